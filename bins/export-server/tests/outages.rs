//! The database goes away under a running server (PostgreSQL, cut off with `ALLOW_CONNECTIONS
//! false` and its connections terminated): authenticated requests answer 503 `unavailable` with
//! `Retry-After` within the pool's connection timeout, not 500; `/healthz` still answers 200 and
//! `/readyz` 503; once the database is back, the same requests succeed again. Needs
//! EXPORT_TEST_POSTGRES_URL (skipped loudly without it).

mod common;

use std::time::{Duration, Instant};

use common::*;
use export_store::StoreOptions;
use export_store::testing::TestDatabase;

/// A request and the user it is made as (their real demo id and role).
struct Request {
    method: &'static str,
    path: String,
    body: Option<String>,
    user: &'static str,
    role: &'static str,
}

fn requests() -> Vec<Request> {
    let report = serde_json::json!({"patient_id": ZOE, "start_date": "2024-01-01",
        "end_date": "2026-12-31", "format": "pdf"})
    .to_string();
    vec![
        Request {
            method: "GET",
            path: "/api/v1/export/jobs".into(),
            body: None,
            user: MARGARET,
            role: "therapist",
        },
        // Reads the clinical source (the relationship to the patient) and the audit trail.
        Request {
            method: "POST",
            path: "/api/v1/export/progress-report".into(),
            body: Some(report),
            user: MARGARET,
            role: "therapist",
        },
        Request {
            method: "GET",
            path: "/api/v1/audit/logs".into(),
            body: None,
            user: HELEN,
            role: "admin",
        },
        Request {
            method: "GET",
            path: "/api/v1/export/scheduled".into(),
            body: None,
            user: MARGARET,
            role: "therapist",
        },
    ]
}

fn send(server: &Server, request: &Request) -> Reply {
    call(
        request.method,
        &server.url(&request.path),
        Some(&token(request.user, request.role)),
        request.body.as_deref(),
        &[],
    )
}

#[test]
fn unreachable_database_answers_503_with_retry_after_not_500() {
    let Some(db) =
        TestDatabase::postgres("unreachable_database_answers_503_with_retry_after_not_500")
    else {
        return;
    };
    let server = Server::start(&db, &[("EXPORT_EXPORTS_PER_HOUR", "1000")]);
    for request in &requests() {
        let reply = send(&server, request);
        assert!(
            reply.status < 300,
            "{} {}: {} {}",
            request.method,
            request.path,
            reply.status,
            reply.text()
        );
    }

    db.refuse_connections();
    let timeout = StoreOptions::default().connection_timeout;
    for request in &requests() {
        let started = Instant::now();
        let reply = send(&server, request);
        let waited = started.elapsed();
        let at = format!("{} {}", request.method, request.path);
        assert_eq!(
            reply.status,
            503,
            "{at}: {}\n{}",
            reply.text(),
            server.log()
        );
        assert_eq!(reply.header("retry-after"), Some("5"), "{at}");
        let body = reply.json();
        assert_eq!(body["error"], "unavailable", "{at}: {body}");
        assert_eq!(
            body["message"], "the database does not answer; try again in a few seconds",
            "{at}"
        );
        assert!(
            waited < timeout + Duration::from_secs(5),
            "{at} answered after {waited:?}, the pool gives up after {timeout:?}"
        );
    }
    assert_eq!(get(&server, "/healthz", None).status, 200);
    let ready = get(&server, "/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.header("retry-after"), Some("5"));
    let log = server.log();
    assert!(log.contains("the database is unavailable"), "{log}");
    assert!(
        !log.contains("Zoë") && !log.contains(ZOE),
        "ids of requests only: {log}"
    );

    db.accept_connections();
    let deadline = Instant::now() + timeout * 3;
    for request in &requests() {
        loop {
            let reply = send(&server, request);
            if reply.status < 300 {
                break;
            }
            assert_eq!(reply.status, 503, "{}", reply.text());
            assert!(
                Instant::now() < deadline,
                "{} {} did not recover",
                request.method,
                request.path
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(get(&server, "/readyz", None).status, 200);
}
