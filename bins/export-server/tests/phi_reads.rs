//! Every read of protected health information re-checks the reader's right at the moment of
//! reading, over real HTTP on SQLite and on PostgreSQL: a therapist whose care relationship ended
//! can no longer download or share the patient's export (bearer token or signed link), a file
//! past its expiry answers 410 before the expiry pass has run, the audit trail's CSV export is an
//! audited read for administrators only, and the per-user export limit holds under parallel
//! requests. Each refusal is on the audit trail.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

test_on_both_backends! {
    a_former_therapists_bearer_download_is_refused_and_audited,
    an_expired_file_is_refused_with_410_before_the_sweep_runs,
    the_audit_csv_export_is_an_audited_read_for_administrators_only,
    forty_parallel_submits_at_a_limit_of_twenty_accept_exactly_twenty,
}

const PROGRESS: &str = "/api/v1/export/progress-report";

fn zoe_report() -> String {
    serde_json::json!({"patient_id": ZOE, "start_date": "2025-01-01", "end_date": "2025-12-31",
        "format": "pdf"})
    .to_string()
}

/// Margaret's progress report of Zoë, completed; its id.
fn completed_report(server: &Server, margaret: &str) -> String {
    let reply = post(server, PROGRESS, Some(margaret), &zoe_report());
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let job = wait_for_job(server, margaret, &id);
    assert_eq!(job["status"], "completed", "{job}");
    id
}

/// The audit entries of job `id`, as (action, outcome, metadata), in chain order.
fn trail_of(server: &Server, id: &str) -> Vec<(String, String, serde_json::Value)> {
    audit_entries_of_job(server, id)
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
                e["metadata"].clone(),
            )
        })
        .collect()
}

fn a_former_therapists_bearer_download_is_refused_and_audited(db: &TestDatabase) {
    let server = Server::start(db, &[]);
    let margaret = token(MARGARET, "therapist");
    let id = completed_report(&server, &margaret);
    let download = format!("/api/v1/export/download/{id}");
    assert_eq!(get(&server, &download, Some(&margaret)).status, 200);
    // A link shared while she still cared for Zoë.
    let link = request_link(&server, &id, &margaret);
    assert_eq!(link.status, 201, "{}", link.text());
    let link_url = link.json()["url"].as_str().unwrap().to_owned();

    // The care relationship ends.
    db.execute(&format!(
        "UPDATE therapist_patients SET is_active = false \
         WHERE therapist_id = '{MARGARET}' AND patient_id = '{ZOE}'"
    ));

    let bearer = get(&server, &download, Some(&margaret));
    assert_eq!(bearer.status, 403, "bearer: {}", bearer.text());
    assert!(
        bearer.json()["message"]
            .as_str()
            .unwrap()
            .contains("no active care relationship"),
        "{}",
        bearer.text()
    );
    let by_link = get(&server, &link_url, None);
    assert_eq!(by_link.status, 403, "link: {}", by_link.text());
    let new_link = request_link(&server, &id, &margaret);
    assert_eq!(new_link.status, 403, "new link: {}", new_link.text());

    let trail = trail_of(&server, &id);
    let refusals: Vec<(&str, &str, &str)> = trail
        .iter()
        .filter(|(_, outcome, _)| outcome == "denied")
        .map(|(action, _, metadata)| {
            (
                action.as_str(),
                metadata["via"].as_str().unwrap_or_default(),
                metadata["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let reason = "no active care relationship with this patient";
    assert_eq!(
        refusals,
        [
            ("downloaded", "bearer", reason),
            ("downloaded", "link", reason),
            ("shared", "link", reason),
        ],
        "every refused read on record: {trail:?}"
    );
    assert!(server.stop().success());
}

fn an_expired_file_is_refused_with_410_before_the_sweep_runs(db: &TestDatabase) {
    // The expiry pass runs at start and then only a day later: it never reaches this job.
    let server = Server::start(db, &[("EXPORT_EXPIRY_INTERVAL_SECONDS", "86400")]);
    let margaret = token(MARGARET, "therapist");
    let id = completed_report(&server, &margaret);
    db.execute(&format!(
        "UPDATE export_jobs SET expires_at = '2025-01-01 00:00:00' WHERE id = '{id}'"
    ));

    let download = get(
        &server,
        &format!("/api/v1/export/download/{id}"),
        Some(&margaret),
    );
    assert_eq!(download.status, 410, "{}", download.text());
    assert_eq!(download.json()["error"], "gone");
    let link = request_link(&server, &id, &margaret);
    assert_eq!(
        link.status,
        410,
        "a link to an expired file: {}",
        link.text()
    );
    // The sweep has not run: the job is still marked completed, and the refusal is on record.
    let job = get(
        &server,
        &format!("/api/v1/export/jobs/{id}"),
        Some(&margaret),
    );
    assert_eq!(job.json()["status"], "completed");
    let trail = trail_of(&server, &id);
    let last = trail.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str(), &last.2["reason"]),
        (
            "downloaded",
            "denied",
            &serde_json::json!("the file has expired")
        ),
        "{trail:?}"
    );
    assert!(server.stop().success());
}

fn the_audit_csv_export_is_an_audited_read_for_administrators_only(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    let helen = token(HELEN, "admin");
    let margaret = token(MARGARET, "therapist");
    // Some trail to export: three requests of Margaret's.
    for _ in 0..3 {
        assert_eq!(
            post(&server, PROGRESS, Some(&margaret), &zoe_report()).status,
            202
        );
    }
    let export = "/api/v1/audit/logs/export?action=requested";
    let refused = get(&server, export, Some(&margaret));
    assert_eq!(refused.status, 403, "{}", refused.text());

    let csv = get(&server, export, Some(&helen));
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert!(
        csv.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    let mut reader = csv::Reader::from_reader(csv.body.as_slice());
    let headers = reader.headers().unwrap().clone();
    let action = headers.iter().position(|h| h == "action").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "the three requests");
    assert!(rows.iter().all(|r| &r[action] == "requested"));

    // Both reads of the trail are on it: Margaret's refused, Helen's with her filters.
    let reads = get(
        &server,
        "/api/v1/audit/logs?action=downloaded",
        Some(&helen),
    );
    let entries = reads.json()["entries"].as_array().unwrap().clone();
    let exports: Vec<(String, String, serde_json::Value)> = entries
        .iter()
        .filter(|e| e["metadata"]["via"] == "audit_export")
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
                e["metadata"]["filters"].clone(),
            )
        })
        .collect();
    assert_eq!(
        exports,
        [
            (
                MARGARET.to_owned(),
                "denied".to_owned(),
                serde_json::Value::Null
            ),
            (
                HELEN.to_owned(),
                "success".to_owned(),
                serde_json::json!({"action": true})
            ),
        ],
        "{entries:?}"
    );
    assert!(server.stop().success());
}

fn forty_parallel_submits_at_a_limit_of_twenty_accept_exactly_twenty(db: &TestDatabase) {
    let server = Arc::new(Server::start(
        db,
        &[("EXPORT_ROLE", "api"), ("EXPORT_EXPORTS_PER_HOUR", "20")],
    ));
    let margaret = token(MARGARET, "therapist");
    warm_pool(&server, &margaret);
    let gate = Arc::new(Barrier::new(40));
    let requests: Vec<_> = (0..40)
        .map(|n| {
            let (server, gate, margaret) = (server.clone(), gate.clone(), margaret.clone());
            std::thread::spawn(move || {
                let key = format!("parallel-{n}");
                gate.wait();
                let reply = call(
                    "POST",
                    &server.url(PROGRESS),
                    Some(&margaret),
                    Some(&zoe_report()),
                    &[("Idempotency-Key", &key)],
                );
                (reply.status, reply.header("retry-after").map(str::to_owned))
            })
        })
        .collect();
    let answers: Vec<(u16, Option<String>)> =
        requests.into_iter().map(|t| t.join().unwrap()).collect();
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(
        (accepted, limited.len()),
        (20, 20),
        "exactly the limit accepted, the rest refused: {answers:?}"
    );
    assert!(limited.iter().all(|(_, wait)| wait.is_some()));
    let jobs = get(&server, "/api/v1/export/jobs", Some(&margaret)).json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 20);
    let server = Arc::into_inner(server).unwrap();
    assert!(server.stop().success());
}
