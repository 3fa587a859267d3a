//! Costs stay bounded under hostile traffic, over real HTTP: invented methods add no metrics
//! series, the per-address limit believes `X-Forwarded-For` only from a configured trusted proxy
//! (and the audit trail records the address it believed), and statistics over a long period
//! answer from SQL.

mod common;

use std::io::{Read, Write};

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

test_on_both_backends! {
    forwarded_for_is_believed_only_from_a_trusted_proxy_for_the_limit_and_the_audit_trail,
    statistics_of_a_year_answer_from_the_database,
}

#[test]
fn invented_methods_count_as_other_and_add_no_series() {
    let db = TestDatabase::sqlite();
    let server = Server::start(&db, &[]);
    // ureq sends only the standard methods, so these go as raw HTTP/1.1.
    let address = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    for i in 0..40 {
        let method = format!("PROBE{i}");
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "{method} /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 405"), "{method}: {answer}");
    }
    let metrics = get(&server, "/metrics", None).text();
    assert!(
        !metrics.contains("PROBE"),
        "a label per invented method:\n{metrics}"
    );
    let other: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total") && l.contains("method=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(other[0].ends_with(" 40"), "{other:?}");
}

/// The addresses the audit trail recorded for requests about job `id` (entries the workers write
/// have none).
fn audited_addresses(server: &Server, id: &str) -> Vec<String> {
    audit_entries_of_job(server, id)
        .iter()
        .filter_map(|e| e["ip_address"].as_str().filter(|a| !a.is_empty()))
        .map(str::to_owned)
        .collect()
}

fn submit_from(server: &Server, margaret: &str, forwarded_for: &str) -> Reply {
    call(
        "POST",
        &server.url("/api/v1/export/progress-report"),
        Some(margaret),
        Some(
            &serde_json::json!({"patient_id": ZOE, "start_date": "2025-01-01",
                "end_date": "2025-12-31", "format": "json"})
            .to_string(),
        ),
        &[("X-Forwarded-For", forwarded_for)],
    )
}

fn forwarded_for_is_believed_only_from_a_trusted_proxy_for_the_limit_and_the_audit_trail(
    db: &TestDatabase,
) {
    let margaret = token(MARGARET, "therapist");
    // No trusted proxy: the header is the client's own claim, ignored by the limit and the
    // audit trail alike.
    {
        let server = Server::start(db, &[("EXPORT_REQUESTS_PER_MINUTE_PER_IP", "4")]);
        let reply = submit_from(&server, &margaret, "198.51.100.1");
        assert_eq!(reply.status, 202, "{}", reply.text());
        let id = reply.json()["id"].as_str().unwrap().to_owned();
        let addresses = audited_addresses(&server, &id);
        assert!(!addresses.is_empty());
        assert!(addresses.iter().all(|a| a == "127.0.0.1"), "{addresses:?}");
        // Changing the header does not escape the limit.
        let mut statuses = Vec::new();
        for i in 0..6 {
            statuses.push(
                call(
                    "GET",
                    &server.url("/healthz"),
                    None,
                    None,
                    &[("X-Forwarded-For", &format!("203.0.113.{i}"))],
                )
                .status,
            );
        }
        assert!(statuses.contains(&429), "{statuses:?}");
    }
    // Behind a trusted proxy: the address it forwarded is the client's.
    let server = Server::start(
        db,
        &[
            ("EXPORT_REQUESTS_PER_MINUTE_PER_IP", "4"),
            ("EXPORT_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
        ],
    );
    let reply = submit_from(&server, &margaret, "192.0.2.50, 198.51.100.7, 10.1.2.3");
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let addresses = audited_addresses(&server, &id);
    assert!(
        addresses.iter().any(|a| a == "198.51.100.7"),
        "the right-most untrusted hop is audited: {addresses:?}"
    );
    let healthz = |client: &str| {
        call(
            "GET",
            &server.url("/healthz"),
            None,
            None,
            &[("X-Forwarded-For", client)],
        )
        .status
    };
    // 198.51.100.7 has used one of its four; three more pass, the next is limited.
    let statuses: Vec<u16> = (0..4).map(|_| healthz("198.51.100.7")).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Another client behind the same proxy has its own bucket.
    assert_eq!(healthz("198.51.100.8"), 200);
}

fn statistics_of_a_year_answer_from_the_database(db: &TestDatabase) {
    let server = Server::start(db, &[]);
    let margaret = token(MARGARET, "therapist");
    for _ in 0..3 {
        let reply = submit_from(&server, &margaret, "198.51.100.1");
        assert_eq!(reply.status, 202, "{}", reply.text());
        let id = reply.json()["id"].as_str().unwrap().to_owned();
        assert_eq!(wait_for_job(&server, &margaret, &id)["status"], "completed");
    }
    let reply = get(
        &server,
        "/api/v1/export/stats?days=366",
        Some(&token(HELEN, "admin")),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let stats = reply.json();
    assert_eq!(stats["total"], 3, "{stats}");
    assert_eq!(stats["by_status"]["completed"], 3, "{stats}");
}
