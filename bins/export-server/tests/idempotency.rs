//! Idempotency under concurrency, over real HTTP on SQLite and on PostgreSQL: requests racing
//! with one `Idempotency-Key` and the same body all answer 202 with the same job, and exactly one
//! job (and one `requested` entry) exists; the same key with a different body is a 409 that names
//! the key, also when it races.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

test_on_both_backends! {
    twenty_concurrent_submits_with_one_key_give_one_job,
}

const PROGRESS: &str = "/api/v1/export/progress-report";

fn report(format: &str) -> String {
    serde_json::json!({"patient_id": ZOE, "start_date": "2025-01-01", "end_date": "2025-12-31",
        "format": format})
    .to_string()
}

fn twenty_concurrent_submits_with_one_key_give_one_job(db: &TestDatabase) {
    let server = Arc::new(Server::start(db, &[("EXPORT_ROLE", "api")]));
    let margaret = token(MARGARET, "therapist");
    warm_pool(&server, &margaret);
    // Twenty with one body, four more with another body under the same key.
    let gate = Arc::new(Barrier::new(24));
    let requests: Vec<_> = (0..24)
        .map(|n| {
            let (server, gate, margaret) = (server.clone(), gate.clone(), margaret.clone());
            std::thread::spawn(move || {
                let body = report(if n < 20 { "pdf" } else { "docx" });
                gate.wait();
                let reply = call(
                    "POST",
                    &server.url(PROGRESS),
                    Some(&margaret),
                    Some(&body),
                    &[("Idempotency-Key", "one-key")],
                );
                (n, reply.status, reply.json())
            })
        })
        .collect();
    let answers: Vec<_> = requests.into_iter().map(|t| t.join().unwrap()).collect();
    let accepted: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 202).collect();
    let conflicts: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 409).collect();
    assert_eq!(
        accepted.len() + conflicts.len(),
        24,
        "every answer a 202 or a 409, never a 500: {answers:?}"
    );
    let ids: std::collections::HashSet<&str> = accepted
        .iter()
        .map(|(_, _, job)| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one job for one key: {ids:?}");
    let winner_format = accepted[0].2["format"].as_str().unwrap().to_owned();
    for (n, _, job) in &accepted {
        assert_eq!(job["format"], winner_format.as_str(), "request {n}");
    }
    // Whichever body won, every request with the other body was told of the key.
    let losing = if winner_format == "pdf" {
        20..24
    } else {
        0..20
    };
    assert_eq!(conflicts.len(), losing.len(), "{answers:?}");
    for (n, _, error) in &conflicts {
        assert!(
            losing.contains(n),
            "request {n} had the winning body: {error}"
        );
        assert_eq!(error["error"], "idempotency_key_reused");
        assert_eq!(error["field"], "Idempotency-Key");
        assert!(error["message"].as_str().unwrap().contains("one-key"));
    }
    let jobs = get(&server, "/api/v1/export/jobs", Some(&margaret)).json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1);
    let id = ids.into_iter().next().unwrap();
    let trail = get(
        &server,
        &format!("/api/v1/audit/logs?export_job_id={id}&action=requested"),
        Some(&token(HELEN, "admin")),
    );
    assert_eq!(trail.json()["entries"].as_array().unwrap().len(), 1);
    let server = Arc::into_inner(server).unwrap();
    assert!(server.stop().success());
}
