//! What the server refuses, over real HTTP on SQLite and on PostgreSQL: malformed requests (each
//! answered with the status, error code and field at fault), callers without the right token or
//! the right to what they ask, RS256 tokens checked with the platform's public key, the per-user
//! and per-address rate limits, and forged download links. Every refusal is a JSON body with
//! `error` and `message`, carries a request id, and is never a server error.

mod common;

use std::process::Command;

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

test_on_both_backends! {
    malformed_requests_are_refused_with_the_field_at_fault,
    callers_are_refused_what_they_may_not_do,
    rs256_tokens_are_checked_with_the_platform_public_key,
    exports_are_limited_per_user_and_requests_per_address,
    forged_download_links_are_refused,
}

/// Checks the shape every refusal shares and returns its body: a 4xx with a request id and a JSON
/// body holding `error` and `message` strings.
fn refusal(reply: &Reply, what: &str) -> serde_json::Value {
    assert!(
        (400..500).contains(&reply.status),
        "{what}: expected a refusal, got {}: {}",
        reply.status,
        reply.text()
    );
    assert!(
        reply
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty()),
        "{what}: no X-Request-Id on the refusal"
    );
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{what}: the refusal is not JSON: {:?}",
        reply.header("content-type")
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("{what}: the body is not JSON: {}", reply.text()));
    assert!(body["error"].is_string(), "{what}: no error code: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message: {body}"
    );
    body
}

/// Checks a refusal's status and error code; returns its body.
fn refused(reply: &Reply, what: &str, status: u16, error: &str) -> serde_json::Value {
    let body = refusal(reply, what);
    assert_eq!(
        (reply.status, body["error"].as_str()),
        (status, Some(error)),
        "{what}: {body}"
    );
    body
}

/// One malformed request and the refusal it earns.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    /// `None`: Margaret's token.
    token: Option<String>,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    error: &'static str,
    field: Option<&'static str>,
}

impl Case {
    fn new(what: &'static str, method: &'static str, path: &str, body: Option<String>) -> Case {
        Case {
            what,
            method,
            path: path.to_owned(),
            token: None,
            body,
            headers: Vec::new(),
            status: 0,
            error: "",
            field: None,
        }
    }

    fn get(what: &'static str, path: &str) -> Case {
        Case::new(what, "GET", path, None)
    }

    fn post(what: &'static str, path: &str, body: impl Into<String>) -> Case {
        Case::new(what, "POST", path, Some(body.into()))
    }

    fn by(mut self, token: &str) -> Case {
        self.token = Some(token.to_owned());
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    /// The refusal expected: status, error code and the field named (`None`: no field).
    fn is(mut self, status: u16, error: &'static str, field: Option<&'static str>) -> Case {
        (self.status, self.error, self.field) = (status, error, field);
        self
    }
}

const PROGRESS: &str = "/api/v1/export/progress-report";
const NOTES: &str = "/api/v1/export/session-notes";
const SUMMARY: &str = "/api/v1/export/treatment-summary";
const RECORD: &str = "/api/v1/export/full-record";
const JOBS: &str = "/api/v1/export/jobs";

/// A valid progress report of Zoë's, as Margaret may request it.
fn progress_body() -> serde_json::Value {
    serde_json::json!({"patient_id": ZOE, "start_date": "2025-01-01", "end_date": "2025-12-31",
        "format": "pdf"})
}

/// `progress_body` with `changes` on top.
fn progress_with(changes: serde_json::Value) -> String {
    let mut body = progress_body();
    for (key, value) in changes.as_object().unwrap() {
        body[key] = value.clone();
    }
    body.to_string()
}

fn malformed_requests_are_refused_with_the_field_at_fault(db: &TestDatabase) {
    // API only: nothing here should ever reach a worker. A small body limit for the oversize row.
    let server = Server::start(
        db,
        &[("EXPORT_ROLE", "api"), ("EXPORT_MAX_BODY_BYTES", "2048")],
    );
    let margaret = token(MARGARET, "therapist");
    let helen = token(HELEN, "admin");
    let session = zoe_sessions().swap_remove(0);
    let unknown = "00000000-0000-4000-8000-000000000001";
    let link = format!("{JOBS}/{unknown}/link");
    let oversize = serde_json::json!({
        "session_ids": (0..100).map(|_| uuid::Uuid::new_v4().to_string()).collect::<Vec<_>>(),
        "format": "pdf",
    })
    .to_string();
    assert!(oversize.len() > 2048);
    let nested = format!(
        r#"{{"format": "csv", "filters": {{"status": {}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let valid = progress_body().to_string();

    let cases = vec![
        // The body as JSON.
        Case::post("malformed JSON", PROGRESS, r#"{"patient_id": "#).is(
            400,
            "malformed_json",
            None,
        ),
        Case::post("a JSON array body", PROGRESS, "[1, 2]").is(400, "bad_request", None),
        Case::post("a JSON string body", PROGRESS, r#""pdf""#).is(400, "bad_request", None),
        Case::post("an empty body", PROGRESS, "").is(400, "bad_request", None),
        Case::post(
            "trailing data after the object",
            PROGRESS,
            format!("{valid} {{}}"),
        )
        .is(400, "malformed_json", None),
        Case::post(
            "nesting past serde's recursion limit",
            "/api/v1/export/datasets/sessions",
            nested,
        )
        .is(400, "malformed_json", None),
        Case::post(
            "an unknown top-level field",
            PROGRESS,
            progress_with(serde_json::json!({"colour": "red"})),
        )
        .is(400, "invalid_field", Some("colour")),
        Case::post(
            "a number for patient_id",
            PROGRESS,
            progress_with(serde_json::json!({"patient_id": 42})),
        )
        .is(400, "invalid_field", Some("patient_id")),
        Case::post(
            "null for format",
            PROGRESS,
            progress_with(serde_json::json!({"format": null})),
        )
        .is(400, "invalid_field", Some("format")),
        Case::post(
            "a string for session_ids",
            NOTES,
            r#"{"session_ids": "all", "format": "pdf"}"#,
        )
        .is(400, "invalid_field", Some("session_ids")),
        Case::post(
            "a string for an options bool",
            NOTES,
            serde_json::json!({"session_ids": [session], "format": "pdf",
                "options": {"include_transcript": "yes"}})
            .to_string(),
        )
        .is(400, "invalid_field", Some("options.include_transcript")),
        // The body's values.
        Case::post(
            "a bad UUID in session_ids",
            NOTES,
            serde_json::json!({"session_ids": [session, "not-a-uuid"], "format": "pdf"})
                .to_string(),
        )
        .is(422, "invalid", Some("session_ids[1]")),
        Case::post(
            "a session listed twice",
            NOTES,
            serde_json::json!({"session_ids": [session, session], "format": "pdf"}).to_string(),
        )
        .is(422, "invalid", Some("session_ids[1]")),
        Case::post(
            "empty session_ids",
            NOTES,
            r#"{"session_ids": [], "format": "pdf"}"#,
        )
        .is(422, "invalid", Some("session_ids")),
        Case::post(
            "an unknown session option",
            NOTES,
            serde_json::json!({"session_ids": [session], "format": "pdf",
                "options": {"include_horoscope": true}})
            .to_string(),
        )
        .is(422, "invalid", Some("options.include_horoscope")),
        Case::post(
            "a bad UUID for patient_id",
            PROGRESS,
            progress_with(serde_json::json!({"patient_id": "zoe"})),
        )
        .is(422, "invalid", Some("patient_id")),
        Case::post(
            "csv for a progress report",
            PROGRESS,
            progress_with(serde_json::json!({"format": "csv"})),
        )
        .is(422, "invalid", Some("format")),
        Case::post(
            "an unknown format",
            PROGRESS,
            progress_with(serde_json::json!({"format": "odt"})),
        )
        .is(422, "invalid", Some("format")),
        Case::post(
            "an impossible date",
            PROGRESS,
            progress_with(serde_json::json!({"start_date": "2025-02-30"})),
        )
        .is(422, "invalid", Some("start_date")),
        Case::post(
            "a date in another shape",
            PROGRESS,
            progress_with(serde_json::json!({"end_date": "31/12/2025"})),
        )
        .is(422, "invalid", Some("end_date")),
        // The validation names the start of a reversed range.
        Case::post(
            "end_date before start_date",
            PROGRESS,
            progress_with(
                serde_json::json!({"start_date": "2025-06-01", "end_date": "2025-01-01"}),
            ),
        )
        .is(422, "invalid", Some("start_date")),
        Case::post(
            "date_range.end before date_range.start",
            RECORD,
            serde_json::json!({"patient_id": ZOE, "format": "json",
                "date_range": {"start": "2025-06-01", "end": "2025-01-01"}})
            .to_string(),
        )
        .is(422, "invalid", Some("date_range.start")),
        Case::post(
            "date_range without its end",
            RECORD,
            serde_json::json!({"patient_id": ZOE, "format": "json",
                "date_range": {"start": "2025-06-01"}})
            .to_string(),
        )
        .is(422, "invalid", Some("date_range.end")),
        Case::post(
            "an unknown section",
            RECORD,
            serde_json::json!({"patient_id": ZOE, "format": "json",
                "include_sections": {"horoscope": true}})
            .to_string(),
        )
        .is(422, "invalid", Some("include_sections.horoscope")),
        Case::post(
            "an unknown purpose",
            SUMMARY,
            serde_json::json!({"patient_id": ZOE, "format": "pdf", "purpose": "curiosity"})
                .to_string(),
        )
        .is(422, "invalid", Some("purpose")),
        Case::post(
            "a template that does not exist",
            PROGRESS,
            progress_with(serde_json::json!({"template_id": unknown})),
        )
        .is(422, "invalid", Some("template_id")),
        Case::post(
            "an unknown dataset",
            "/api/v1/export/datasets/caseload",
            r#"{"format": "csv"}"#,
        )
        .is(404, "not_found", Some("dataset")),
        Case::post(
            "a dataset name out of its alphabet",
            "/api/v1/export/datasets/Sessions",
            r#"{"format": "csv"}"#,
        )
        .is(422, "invalid", Some("dataset")),
        Case::post(
            "a bad dataset date filter",
            "/api/v1/export/datasets/sessions",
            r#"{"format": "csv", "filters": {"from": "yesterday"}}"#,
        )
        .is(422, "invalid", Some("filters.from")),
        Case::post(
            "an unknown dataset filter",
            "/api/v1/export/datasets/sessions",
            r#"{"format": "csv", "filters": {"colour": "red"}}"#,
        )
        .is(422, "invalid", Some("filters.colour")),
        Case::post(
            "a reversed dataset date range",
            "/api/v1/export/datasets/sessions",
            r#"{"format": "csv", "filters": {"from": "2025-06-01", "to": "2025-01-01"}}"#,
        )
        .is(422, "invalid", Some("filters.to")),
        Case::post("a body over EXPORT_MAX_BODY_BYTES", NOTES, oversize).is(
            413,
            "payload_too_large",
            None,
        ),
        // The Idempotency-Key header, on an otherwise valid request.
        Case::post("an Idempotency-Key too long", PROGRESS, valid.clone())
            .header("Idempotency-Key", "k".repeat(256))
            .is(400, "bad_request", Some("Idempotency-Key")),
        Case::post("a non-ASCII Idempotency-Key", PROGRESS, valid.clone())
            .header("Idempotency-Key", "clé-1")
            .is(400, "bad_request", Some("Idempotency-Key")),
        Case::post("an Idempotency-Key with a space", PROGRESS, valid.clone())
            .header("Idempotency-Key", "key 1")
            .is(400, "bad_request", Some("Idempotency-Key")),
        // Paths.
        Case::get("a bad UUID in the path", &format!("{JOBS}/not-a-uuid")).is(
            400,
            "bad_request",
            Some("id"),
        ),
        Case::new(
            "a bad UUID in the path of a delete",
            "DELETE",
            &format!("{JOBS}/not-a-uuid"),
            None,
        )
        .is(400, "bad_request", Some("id")),
        Case::get(
            "a bad UUID in a download path",
            "/api/v1/export/download/not-a-uuid",
        )
        .is(400, "bad_request", Some("id")),
        Case::get(
            "a bad UUID in a template path",
            "/api/v1/export/templates/not-a-uuid",
        )
        .is(400, "bad_request", Some("id")),
        Case::get("a job that does not exist", &format!("{JOBS}/{unknown}")).is(
            404,
            "not_found",
            None,
        ),
        Case::get("an unknown route", "/api/v1/export/everything").is(404, "not_found", None),
        Case::get("an unknown API version", "/api/v2/export/jobs").is(404, "not_found", None),
        Case::new(
            "a method the resource does not take",
            "PUT",
            "/api/v1/export/progress-report",
            Some("{}".into()),
        )
        .is(405, "method_not_allowed", None),
        Case::new("POST on the job list", "POST", JOBS, Some("{}".into())).is(
            405,
            "method_not_allowed",
            None,
        ),
        Case::post(
            "a field given twice",
            "/api/v1/export/progress-report",
            r#"{"format": "pdf", "format": "docx"}"#,
        )
        .is(400, "invalid_field", Some("format")),
        Case::get(
            "a cursor before any database's calendar",
            &format!("{JOBS}?cursor=-3000000000000000000_4333a588c713511785aa6c9dc288e1df"),
        )
        .is(400, "bad_request", Some("cursor")),
        // Query parameters.
        Case::get("limit=0", &format!("{JOBS}?limit=0")).is(400, "bad_request", Some("limit")),
        Case::get("limit=abc", &format!("{JOBS}?limit=abc")).is(400, "bad_request", Some("limit")),
        Case::get("limit=1001", &format!("{JOBS}?limit=1001")).is(
            400,
            "bad_request",
            Some("limit"),
        ),
        Case::get("status=done", &format!("{JOBS}?status=done")).is(
            400,
            "bad_request",
            Some("status"),
        ),
        Case::get("cursor=garbage", &format!("{JOBS}?cursor=garbage")).is(
            400,
            "bad_request",
            Some("cursor"),
        ),
        Case::get(
            "a cursor with a bad id",
            &format!("{JOBS}?cursor=1735689600000000_nope"),
        )
        .is(400, "bad_request", Some("cursor")),
        Case::get("patient_id=zoe", &format!("{JOBS}?patient_id=zoe")).is(
            400,
            "bad_request",
            Some("patient_id"),
        ),
        Case::get("an unknown query parameter", &format!("{JOBS}?colour=red")).is(
            400,
            "bad_request",
            Some("colour"),
        ),
        Case::get("stats over 0 days", "/api/v1/export/stats?days=0").is(
            400,
            "bad_request",
            Some("days"),
        ),
        Case::get(
            "templates of an unknown type",
            "/api/v1/export/templates?export_type=horoscope",
        )
        .is(400, "bad_request", Some("export_type")),
        Case::get(
            "an unknown audit action",
            "/api/v1/audit/logs?action=peeked",
        )
        .by(&helen)
        .is(400, "invalid", Some("action")),
        Case::get("an audit limit of 0", "/api/v1/audit/logs?limit=0")
            .by(&helen)
            .is(400, "bad_request", Some("limit")),
        Case::get(
            "an audit after that is no number",
            "/api/v1/audit/logs?after=x",
        )
        .by(&helen)
        .is(400, "bad_request", Some("after")),
        Case::get("an unknown audit filter", "/api/v1/audit/logs?colour=red")
            .by(&helen)
            .is(400, "invalid", Some("colour")),
        Case::get(
            "an audit CSV with a bad date",
            "/api/v1/audit/logs/export?from=yesterday",
        )
        .by(&helen)
        .is(400, "invalid", Some("from")),
        // Signed-link requests.
        Case::post("a link for 0 minutes", &link, r#"{"minutes": 0}"#).is(
            422,
            "invalid",
            Some("minutes"),
        ),
        Case::post("a link for two days", &link, r#"{"minutes": 2880}"#).is(
            422,
            "invalid",
            Some("minutes"),
        ),
        Case::post("a link's minutes as text", &link, r#"{"minutes": "5"}"#).is(
            400,
            "invalid_field",
            Some("minutes"),
        ),
        Case::post("a link with an unknown field", &link, r#"{"hours": 1}"#).is(
            400,
            "invalid_field",
            Some("hours"),
        ),
        // Templates.
        Case::post(
            "a template for a dataset",
            "/api/v1/export/templates",
            r#"{"name": "Rows", "export_type": "dataset", "format": "pdf",
                "template_content": "<p>rows</p>"}"#,
        )
        .is(422, "invalid", Some("export_type")),
        Case::post(
            "a template with no name",
            "/api/v1/export/templates",
            r#"{"name": " ", "export_type": "progress_report", "format": "pdf",
                "template_content": "<p>x</p>"}"#,
        )
        .is(422, "invalid", Some("name")),
    ];

    for case in &cases {
        let token = case.token.as_deref().unwrap_or(&margaret);
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = call(
            case.method,
            &server.url(&case.path),
            Some(token),
            case.body.as_deref(),
            &headers,
        );
        let body = refused(&reply, case.what, case.status, case.error);
        assert_eq!(body["field"].as_str(), case.field, "{}: {body}", case.what);
        if case.status == 422 && case.field.is_some() {
            assert!(
                body["errors"]
                    .as_array()
                    .is_none_or(|all| all.iter().any(|e| e["field"].as_str() == case.field)),
                "{}: the list of problems names the field: {body}",
                case.what
            );
        }
    }

    // Several problems at once: every one listed, the first also as `field`.
    let reply = post(
        &server,
        PROGRESS,
        Some(&margaret),
        r#"{"patient_id": "zoe", "start_date": "2025-13-01", "end_date": "", "format": "csv"}"#,
    );
    let body = refused(&reply, "four problems", 422, "invalid");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["patient_id", "start_date", "end_date", "format"]);
    assert_eq!(body["field"], "patient_id");

    // A client's request id comes back on the refusal.
    let reply = call(
        "GET",
        &server.url(&format!("{JOBS}?limit=0")),
        Some(&margaret),
        None,
        &[("X-Request-Id", "refusal-check-1")],
    );
    refused(&reply, "a client request id", 400, "bad_request");
    assert_eq!(reply.header("x-request-id"), Some("refusal-check-1"));

    // Nothing refused above became a job.
    let jobs = get(&server, JOBS, Some(&margaret));
    assert_eq!(jobs.status, 200);
    assert_eq!(jobs.json()["jobs"], serde_json::json!([]));
    assert!(server.stop().success());
}

fn callers_are_refused_what_they_may_not_do(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    let margaret = token(MARGARET, "therapist");
    let daniel = token(DANIEL, "therapist");
    let helen = token(HELEN, "admin");
    let zoe = token(ZOE, "patient");
    let body = progress_body().to_string();

    // Who the caller is.
    let bearer = |value: &str| -> Reply {
        call(
            "GET",
            &server.url(JOBS),
            None,
            None,
            &[("Authorization", value)],
        )
    };
    let unauthenticated = [
        ("no token", get(&server, JOBS, None)),
        ("a Basic header", bearer("Basic bWFyZ2FyZXQ6c2VjcmV0")),
        ("Bearer and nothing", bearer("Bearer ")),
        (
            "an expired token",
            get(
                &server,
                JOBS,
                Some(&token_for(MARGARET, "therapist", -5, SECRET)),
            ),
        ),
        (
            "a token signed with another secret",
            get(
                &server,
                JOBS,
                Some(&token_for(
                    MARGARET,
                    "therapist",
                    60,
                    "another-secret-of-another-service",
                )),
            ),
        ),
        ("a garbage token", get(&server, JOBS, Some("not.a.token"))),
        (
            "an unsigned token (alg none)",
            get(&server, JOBS, Some(&unsigned_token(MARGARET, "therapist"))),
        ),
        (
            "an unknown role claim",
            get(&server, JOBS, Some(&token(MARGARET, "superuser"))),
        ),
        (
            "a subject that is no user id",
            get(&server, JOBS, Some(&token("margaret", "therapist"))),
        ),
        (
            "no token on an export",
            post(&server, PROGRESS, None, &body),
        ),
        (
            "no token on a download",
            get(
                &server,
                "/api/v1/export/download/00000000-0000-4000-8000-000000000001",
                None,
            ),
        ),
    ];
    for (what, reply) in &unauthenticated {
        refused(reply, what, 401, "unauthorized");
    }

    // What the caller may do.
    let forbidden = [
        (
            "a patient creating an export",
            post(&server, PROGRESS, Some(&zoe), &body),
        ),
        (
            "a therapist exporting another therapist's patient",
            post(
                &server,
                PROGRESS,
                Some(&margaret),
                &progress_with(serde_json::json!({"patient_id": LUKASZ})),
            ),
        ),
        (
            "an administrator exporting clinical records",
            post(&server, PROGRESS, Some(&helen), &body),
        ),
        (
            "a therapist exporting the audit dataset",
            post(
                &server,
                "/api/v1/export/datasets/audit",
                Some(&margaret),
                r#"{"format": "csv"}"#,
            ),
        ),
        (
            "a therapist exporting sessions of another's patient",
            post(
                &server,
                "/api/v1/export/datasets/sessions",
                Some(&margaret),
                &serde_json::json!({"format": "csv", "filters": {"patient_id": LUKASZ}})
                    .to_string(),
            ),
        ),
        (
            "a therapist reading the audit trail",
            get(&server, "/api/v1/audit/logs", Some(&margaret)),
        ),
        (
            "a therapist exporting the audit trail",
            get(&server, "/api/v1/audit/logs/export", Some(&margaret)),
        ),
        (
            "a patient reading statistics",
            get(&server, "/api/v1/export/stats", Some(&zoe)),
        ),
    ];
    for (what, reply) in &forbidden {
        refused(reply, what, 403, "forbidden");
    }

    // The refused exports are on the audit trail.
    let trail = get(&server, "/api/v1/audit/logs?action=requested", Some(&helen));
    assert_eq!(trail.status, 200, "{}", trail.text());
    let entries = trail.json()["entries"].as_array().unwrap().clone();
    let denied = |user: &str| -> Vec<serde_json::Value> {
        entries
            .iter()
            .filter(|e| e["user_id"] == user && e["outcome"] == "denied")
            .cloned()
            .collect()
    };
    let margaret_denied = denied(MARGARET);
    assert_eq!(
        margaret_denied.len(),
        3,
        "Lukasz's report, his sessions and the audit dataset: {entries:?}"
    );
    for entry in &margaret_denied {
        assert_eq!(entry["action"], "requested");
        assert_eq!(entry["export_job_id"], serde_json::Value::Null);
        assert_eq!(entry["ip_address"], "127.0.0.1");
        assert!(entry["request_id"].as_str().is_some());
    }
    let no_relationship = margaret_denied
        .iter()
        .filter(|e| {
            e["metadata"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("care relationship"))
        })
        .count();
    assert_eq!(no_relationship, 2, "{margaret_denied:?}");
    assert_eq!(denied(ZOE).len(), 1, "the patient's attempt: {entries:?}");
    assert_eq!(denied(HELEN).len(), 1, "the administrator's: {entries:?}");

    // Another user's job is not found, whatever is asked of it.
    let created = post(&server, PROGRESS, Some(&margaret), &body);
    assert_eq!(created.status, 202, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let job = format!("{JOBS}/{id}");
    let not_found = [
        (
            "Daniel reads Margaret's job",
            get(&server, &job, Some(&daniel)),
        ),
        (
            "Daniel cancels Margaret's job",
            call("DELETE", &server.url(&job), Some(&daniel), None, &[]),
        ),
        (
            "Daniel downloads Margaret's job",
            get(
                &server,
                &format!("/api/v1/export/download/{id}"),
                Some(&daniel),
            ),
        ),
        (
            "Daniel shares Margaret's job",
            post(&server, &format!("{job}/link"), Some(&daniel), ""),
        ),
        (
            "the administrator reads Margaret's job",
            get(&server, &job, Some(&helen)),
        ),
    ];
    for (what, reply) in &not_found {
        refused(reply, what, 404, "not_found");
    }
    let listed = get(&server, JOBS, Some(&daniel)).json();
    assert_eq!(listed["jobs"], serde_json::json!([]), "Daniel lists none");
    let still = get(&server, &job, Some(&margaret));
    assert_eq!(still.status, 200);
    assert_eq!(
        still.json()["status"],
        "pending",
        "Daniel's cancel did nothing"
    );

    // A job that is not completed is neither downloaded nor shared.
    let download = get(
        &server,
        &format!("/api/v1/export/download/{id}"),
        Some(&margaret),
    );
    refused(&download, "downloading a pending job", 409, "not_ready");
    let link = post(&server, &format!("{job}/link"), Some(&margaret), "");
    refused(&link, "sharing a pending job", 409, "not_ready");
    assert!(server.stop().success());
}

/// base64url without padding, for hand-made tokens.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A token with `"alg": "none"` and no signature.
fn unsigned_token(user: &str, role: &str) -> String {
    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::json!({"sub": user, "role": role,
        "exp": chrono::Utc::now().timestamp() + 3600});
    format!("{header}.{}.", base64url(claims.to_string().as_bytes()))
}

/// Runs openssl with `args`; `None` when openssl is not installed.
fn openssl(args: &[&str]) -> Option<()> {
    match Command::new("openssl").args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(())
        }
        Err(err) => {
            eprintln!("SKIPPED: RS256 tokens not tested, openssl could not run: {err}");
            None
        }
    }
}

/// An RSA key pair made by openssl: (private PEM, public PEM path).
fn rsa_key_pair(dir: &std::path::Path, name: &str) -> Option<(Vec<u8>, String)> {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let (private, public) = (private.to_str()?, public.to_str()?);
    openssl(&["genrsa", "-out", private, "2048"])?;
    openssl(&["rsa", "-in", private, "-pubout", "-out", public])?;
    Some((std::fs::read(private).unwrap(), public.to_owned()))
}

fn rs256_token(private_pem: &[u8], user: &str, role: &str, minutes: i64) -> String {
    let claims = serde_json::json!({"sub": user, "role": role,
        "exp": chrono::Utc::now().timestamp() + minutes * 60});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(private_pem).expect("an RSA private key"),
    )
    .unwrap()
}

fn rs256_tokens_are_checked_with_the_platform_public_key(db: &TestDatabase) {
    let keys = tempfile::tempdir().unwrap();
    let Some((platform, public)) = rsa_key_pair(keys.path(), "platform") else {
        return;
    };
    let Some((stranger, _)) = rsa_key_pair(keys.path(), "stranger") else {
        return;
    };
    let server = Server::start(
        db,
        &[
            ("EXPORT_ROLE", "api"),
            ("EXPORT_TOKEN_PUBLIC_KEY_FILE", public.as_str()),
        ],
    );
    let signed = rs256_token(&platform, MARGARET, "therapist", 60);
    let reply = get(&server, JOBS, Some(&signed));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["jobs"], serde_json::json!([]));

    let public_pem = std::fs::read(&public).unwrap();
    let refusals = [
        // The server still has EXPORT_TOKEN_SECRET; the public key takes its place.
        ("an HS256 token", token(MARGARET, "therapist")),
        (
            "an HS256 token keyed with the public key",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &serde_json::json!({"sub": MARGARET, "role": "therapist",
                    "exp": chrono::Utc::now().timestamp() + 3600}),
                &jsonwebtoken::EncodingKey::from_secret(&public_pem),
            )
            .unwrap(),
        ),
        (
            "an RS256 token of another key",
            rs256_token(&stranger, MARGARET, "therapist", 60),
        ),
        (
            "an expired RS256 token",
            rs256_token(&platform, MARGARET, "therapist", -5),
        ),
        (
            "an RS256 token with an unknown role",
            rs256_token(&platform, MARGARET, "root", 60),
        ),
        ("an unsigned token", unsigned_token(MARGARET, "therapist")),
    ];
    for (what, token) in &refusals {
        refused(&get(&server, JOBS, Some(token)), what, 401, "unauthorized");
    }
    assert!(server.stop().success());
}

fn exports_are_limited_per_user_and_requests_per_address(db: &TestDatabase) {
    let server = Server::start(
        db,
        &[("EXPORT_ROLE", "api"), ("EXPORT_EXPORTS_PER_HOUR", "3")],
    );
    let margaret = token(MARGARET, "therapist");
    let body = progress_body().to_string();
    let submit = |key: Option<&str>, body: &str, token: &str| -> Reply {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        call(
            "POST",
            &server.url(PROGRESS),
            Some(token),
            Some(body),
            &headers,
        )
    };
    let mut ids = Vec::new();
    for key in ["first", "second", "third"] {
        let reply = submit(Some(key), &body, &margaret);
        assert_eq!(reply.status, 202, "{key}: {}", reply.text());
        ids.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    for (what, key) in [
        ("a fourth export", Some("fourth")),
        ("one without a key", None),
    ] {
        let reply = submit(key, &body, &margaret);
        refused(&reply, what, 429, "rate_limited");
        let wait: u64 = reply
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: Retry-After in seconds: {:?}", reply.headers));
        assert!((1..=3600).contains(&wait), "{what}: Retry-After {wait}");
    }
    // A replay is the job already accepted, limit or not.
    let replay = submit(Some("first"), &body, &margaret);
    assert_eq!(replay.status, 202, "{}", replay.text());
    assert_eq!(replay.json()["id"], ids[0].as_str());
    let other = submit(
        Some("first"),
        &progress_with(serde_json::json!({"format": "docx"})),
        &margaret,
    );
    let refusal = refused(
        &other,
        "a key reused for another request",
        409,
        "idempotency_key_reused",
    );
    assert_eq!(refusal["field"], "Idempotency-Key");
    let listed = get(&server, JOBS, Some(&margaret)).json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 3, "{listed}");
    // The limit is Margaret's, not everyone's.
    let daniel = submit(
        None,
        &progress_with(serde_json::json!({"patient_id": LUKASZ})),
        &token(DANIEL, "therapist"),
    );
    assert_eq!(daniel.status, 202, "{}", daniel.text());
    assert!(server.stop().success());

    // The per-address limit, on every route: five at once, then a wait.
    let server = Server::start(
        db,
        &[
            ("EXPORT_ROLE", "api"),
            ("EXPORT_REQUESTS_PER_MINUTE_PER_IP", "5"),
        ],
    );
    for n in 1..=5 {
        let reply = get(&server, "/healthz", None);
        assert_eq!(reply.status, 200, "request {n}: {}", reply.text());
    }
    for (what, reply) in [
        ("a sixth request", get(&server, "/healthz", None)),
        ("a seventh, to the API", get(&server, JOBS, Some(&margaret))),
    ] {
        refused(&reply, what, 429, "rate_limited");
        let wait: u64 = reply
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: Retry-After in seconds: {:?}", reply.headers));
        assert!((1..=60).contains(&wait), "{what}: Retry-After {wait}");
    }
    assert!(server.stop().success());
}

fn forged_download_links_are_refused(db: &TestDatabase) {
    let server = Server::start(db, &[]);
    let margaret = token(MARGARET, "therapist");
    let created = post(
        &server,
        RECORD,
        Some(&margaret),
        &serde_json::json!({"patient_id": ZOE, "format": "json"}).to_string(),
    );
    assert_eq!(created.status, 202, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_for_job(&server, &margaret, &id)["status"], "completed");
    let issued = post(
        &server,
        &format!("{JOBS}/{id}/link"),
        Some(&margaret),
        r#"{"minutes": 5}"#,
    );
    assert_eq!(issued.status, 201, "{}", issued.text());
    let url = issued.json()["url"].as_str().unwrap().to_owned();
    assert_eq!(get(&server, &url, None).status, 200, "the link as issued");

    // The token is `job.user.expiry.signature`.
    let (address, signed) = url.split_once("?token=").unwrap();
    let parts: Vec<&str> = signed.split('.').collect();
    assert_eq!(parts.len(), 4, "{signed}");
    let expiry: i64 = parts[2].parse().unwrap();
    let with = |index: usize, value: &str| -> String {
        let mut parts = parts.clone();
        parts[index] = value;
        format!("{address}?token={}", parts.join("."))
    };
    let daniel = uuid::Uuid::parse_str(DANIEL).unwrap().simple().to_string();
    let forged = [
        ("a later expiry", with(2, &(expiry + 3600).to_string())),
        ("an earlier expiry", with(2, &(expiry - 3600).to_string())),
        ("another user", with(1, &daniel)),
        ("a flipped signature", with(3, &"0".repeat(64))),
        ("a short signature", with(3, &parts[3][..32])),
        (
            "a token with no signature",
            format!("{address}?token={}", parts[..3].join(".")),
        ),
        ("an empty token", format!("{address}?token=")),
    ];
    for (what, url) in &forged {
        refused(&get(&server, url, None), what, 403, "forbidden");
    }

    // Every forged use is audited as a denied download.
    let trail = get(
        &server,
        "/api/v1/audit/logs?action=downloaded",
        Some(&token(HELEN, "admin")),
    );
    assert_eq!(trail.status, 200, "{}", trail.text());
    let entries = trail.json()["entries"].as_array().unwrap().clone();
    let denied = entries
        .iter()
        .filter(|e| e["outcome"] == "denied" && e["metadata"]["via"] == "link")
        .count();
    assert_eq!(denied, forged.len(), "{entries:?}");
    assert!(server.stop().success());
}
