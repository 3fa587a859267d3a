//! End to end over real HTTP against the real server, on SQLite and on PostgreSQL: every export
//! type and format from request to downloaded file read back; cancel, delete, expiry and signed
//! links; templates created, previewed and used; the audit trail for administrators.

mod common;

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

test_on_both_backends! {
    every_type_and_format_goes_from_request_to_a_downloaded_file,
    jobs_are_cancelled_deleted_expired_and_shared_by_signed_links,
    templates_are_created_previewed_and_used,
}

fn request_body(export_type: &str, format: &str, sessions: &[String]) -> (String, String) {
    let (path, body) = match export_type {
        "session_notes" => (
            "session-notes",
            serde_json::json!({"session_ids": sessions, "format": format}),
        ),
        "progress_report" => (
            "progress-report",
            serde_json::json!({"patient_id": ZOE, "start_date": "2024-01-01",
                "end_date": "2026-12-31", "format": format}),
        ),
        "treatment_summary" => (
            "treatment-summary",
            serde_json::json!({"patient_id": ZOE, "format": format, "purpose": "records"}),
        ),
        "full_record" => (
            "full-record",
            serde_json::json!({"patient_id": ZOE, "format": format}),
        ),
        _ => (
            "datasets/sessions",
            serde_json::json!({"format": format, "filters": {"patient_id": ZOE}}),
        ),
    };
    (format!("/api/v1/export/{path}"), body.to_string())
}

fn every_type_and_format_goes_from_request_to_a_downloaded_file(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_EXPORTS_PER_HOUR", "100")]);
    let margaret = token(MARGARET, "therapist");
    let sessions = zoe_sessions();
    let pairs: &[(&str, &[&str])] = &[
        ("session_notes", &["pdf", "docx", "json", "csv", "xlsx"]),
        ("progress_report", &["pdf", "docx", "json"]),
        ("treatment_summary", &["pdf", "docx", "json"]),
        ("full_record", &["json", "pdf"]),
        ("dataset", &["csv", "json", "xlsx", "pdf"]),
    ];
    let mut submitted = Vec::new();
    for (export_type, formats) in pairs {
        for format in *formats {
            let (path, body) = request_body(export_type, format, &sessions);
            let reply = post(&server, &path, Some(&margaret), &body);
            assert_eq!(reply.status, 202, "{path} {format}: {}", reply.text());
            let job = reply.json();
            let id = job["id"].as_str().unwrap().to_owned();
            assert_eq!(
                reply.header("content-location"),
                Some(format!("/api/v1/export/jobs/{id}").as_str())
            );
            assert!(reply.header("x-request-id").is_some());
            submitted.push((*export_type, *format, id));
        }
    }
    for (export_type, format, id) in submitted {
        let what = format!("{export_type} as {format}");
        let job = wait_for_job(&server, &margaret, &id);
        assert_eq!(job["status"], "completed", "{what}: {job}");
        let url = job["download_url"].as_str().unwrap();
        assert_eq!(url, format!("/api/v1/export/download/{id}"));
        let file = get(&server, url, Some(&margaret));
        assert_eq!(
            file.status,
            200,
            "{what}: {}\n{}",
            file.text(),
            server.log()
        );
        assert_eq!(file.header("x-export-job-id"), Some(id.as_str()));
        let expected_type = match format {
            "pdf" => "application/pdf",
            "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "json" => "application/json",
            "csv" => "text/csv; charset=utf-8",
            _ => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        };
        assert_eq!(file.header("content-type"), Some(expected_type), "{what}");
        assert_eq!(
            file.header("content-disposition"),
            Some(format!("attachment; filename=\"export_{export_type}_{id}.{format}\"").as_str())
        );
        assert_eq!(job["file_size_bytes"], file.body.len(), "{what}");
        let text = match format {
            "pdf" => pdf_text(&file.body),
            "docx" => docx_text(&file.body),
            "json" => serde_json::from_slice::<serde_json::Value>(&file.body)
                .unwrap()
                .to_string(),
            "csv" => {
                let mut reader = csv::Reader::from_reader(file.body.as_slice());
                let rows = reader.records().map(Result::unwrap).count();
                assert_eq!(job["row_count"], rows, "{what}");
                String::from_utf8(file.body.clone()).unwrap()
            }
            _ => {
                let rows = xlsx_rows(&file.body);
                assert_eq!(job["row_count"], rows.len() - 1, "{what}");
                rows.join("\n")
            }
        };
        let tabular_notes = export_type == "session_notes" && matches!(format, "csv" | "xlsx");
        if !tabular_notes {
            assert!(text.contains("Brontë-Lefèvre"), "{what} names the patient");
        }
    }
    // Prometheus: requests by route, the queue, and what the workers produced.
    let metrics = get(&server, "/metrics", None).text();
    for line in [
        "http_requests_total{method=\"POST\",route=\"/api/v1/export/progress-report\",status=\"202\"} 3",
        "export_jobs{status=\"completed\"} 17",
        "export_queue_depth 0",
        "export_jobs_finished_total{status=\"completed\",format=\"pdf\"} 5",
        "http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/api/v1/export/jobs/{id}\"}",
        "export_duration_seconds_count{export_type=\"dataset\",format=\"xlsx\"} 1",
        "export_file_bytes_count{format=\"docx\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains("Brontë"));
    // The log carries ids, never the patient's name.
    let log = server.log();
    assert!(!log.contains("Brontë"), "no PHI in the log");
    assert!(server.stop().success());
}

fn jobs_are_cancelled_deleted_expired_and_shared_by_signed_links(db: &TestDatabase) {
    // An API-only server: nothing runs, so a job stays pending until cancelled.
    let api = Server::start(db, &[("EXPORT_ROLE", "api")]);
    let margaret = token(MARGARET, "therapist");
    let (path, body) = request_body("progress_report", "pdf", &[]);
    let pending = post(&api, &path, Some(&margaret), &body).json();
    let id = pending["id"].as_str().unwrap();
    let cancelled = call(
        "DELETE",
        &api.url(&format!("/api/v1/export/jobs/{id}")),
        Some(&margaret),
        None,
        &[],
    );
    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.json()["status"], "cancelled");
    let gone = get(
        &api,
        &format!("/api/v1/export/download/{id}"),
        Some(&margaret),
    );
    assert_eq!(
        (gone.status, gone.json()["error"].as_str()),
        (410, Some("gone"))
    );
    assert!(api.stop().success());

    // With workers: complete, share, expire, delete.
    let server = Server::start(db, &[]);
    let (path, body) = request_body("full_record", "json", &[]);
    let job = post(&server, &path, Some(&margaret), &body).json();
    let id = job["id"].as_str().unwrap().to_owned();
    let done = wait_for_job(&server, &margaret, &id);
    assert_eq!(done["status"], "completed");

    let link = post(
        &server,
        &format!("/api/v1/export/jobs/{id}/link"),
        Some(&margaret),
        "{\"minutes\": 5}",
    );
    assert_eq!(link.status, 201, "{}", link.text());
    let url = link.json()["url"].as_str().unwrap().to_owned();
    let by_link = get(&server, &url, None);
    assert_eq!(
        by_link.status,
        200,
        "a signed link needs no token: {}",
        by_link.text()
    );
    assert_eq!(
        by_link.body.len() as u64,
        done["file_size_bytes"].as_u64().unwrap()
    );
    let tampered = url.replace("token=", "token=x");
    assert_eq!(get(&server, &tampered, None).status, 403);
    let other = get(
        &server,
        &url.replace(&id, "00000000-0000-0000-0000-000000000001"),
        None,
    );
    assert_eq!(other.status, 403, "a link opens only its own job");

    // Expiry: an expiry pass eight days on deletes the file and marks the job expired.
    let engine = export_core::engine::ExportEngine::new(
        db.store.clone(),
        std::sync::Arc::new(
            export_core::storage::LocalFileStore::new(
                server.data.path().join("files"),
                export_core::storage::MasterKey::from_hex(MASTER_KEY).unwrap(),
            )
            .unwrap(),
        ),
        std::sync::Arc::new(export_core::source::StoreSource(db.store.clone())),
        export_core::engine::EngineConfig::default(),
    );
    let report = engine
        .expire(chrono::Utc::now() + chrono::Duration::days(8), false)
        .unwrap();
    let (count, bytes) = (report.expired, report.bytes);
    assert_eq!(
        (count, bytes),
        (1, done["file_size_bytes"].as_u64().unwrap())
    );
    let expired = get(
        &server,
        &format!("/api/v1/export/jobs/{id}"),
        Some(&margaret),
    )
    .json();
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["download_url"], serde_json::Value::Null);
    let gone = get(
        &server,
        &format!("/api/v1/export/download/{id}"),
        Some(&margaret),
    );
    assert_eq!(gone.status, 410);
    assert_eq!(get(&server, &url, None).status, 410, "nor by the link");

    // Delete: the job is gone, and its audit trail stays.
    let deleted = call(
        "DELETE",
        &server.url(&format!("/api/v1/export/jobs/{id}")),
        Some(&margaret),
        None,
        &[],
    );
    assert_eq!(deleted.status, 204);
    assert_eq!(
        get(
            &server,
            &format!("/api/v1/export/jobs/{id}"),
            Some(&margaret)
        )
        .status,
        404
    );
    let helen = token(HELEN, "admin");
    let trail = get(
        &server,
        &format!("/api/v1/audit/logs?export_job_id={id}"),
        Some(&helen),
    );
    assert_eq!(trail.status, 200, "{}", trail.text());
    let actions: Vec<String> = trail.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "requested success",
            "created success",
            "shared success",
            "downloaded success",
            "downloaded denied", // its link shown at another job's address
            "expired success",
            "downloaded denied", // after expiry, with the token
            "downloaded denied", // after expiry, by the link
            "deleted success",
        ],
        "every step, in order"
    );
    let entries = trail.json()["entries"].clone();
    let download = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "downloaded")
        .unwrap();
    assert_eq!(
        download["ip_address"], "127.0.0.1",
        "the caller's address is recorded"
    );
    assert!(
        download["user_agent"]
            .as_str()
            .is_some_and(|a| a.contains("ureq"))
    );
    assert!(download["request_id"].as_str().is_some());
    let csv = get(
        &server,
        "/api/v1/audit/logs/export?action=deleted",
        Some(&helen),
    );
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(csv.text().lines().count() >= 2 && csv.text().contains(&id));
    assert_eq!(
        get(&server, "/api/v1/audit/logs", Some(&margaret)).status,
        403
    );
    assert!(server.stop().success());
}

fn templates_are_created_previewed_and_used(db: &TestDatabase) {
    let server = Server::start(db, &[]);
    let margaret = token(MARGARET, "therapist");
    let source = "{% extends \"base.html\" %}{% block content %}<h1>Custom heading for the review</h1>\
        <p>{{ header.patient_name }} had {{ session_count }} sessions.</p>{% endblock content %}";
    let created = post(
        &server,
        "/api/v1/export/templates",
        Some(&margaret),
        &serde_json::json!({"name": "Quarterly review", "export_type": "progress_report",
            "format": "pdf", "template_content": source})
        .to_string(),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let template = created.json();
    let id = template["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/export/templates/{id}").as_str())
    );
    assert_eq!(template["is_system"], false);

    let listed = get(
        &server,
        "/api/v1/export/templates?export_type=progress_report",
        Some(&margaret),
    )
    .json();
    assert!(
        listed["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str())
    );
    let daniel = token(DANIEL, "therapist");
    assert_eq!(
        get(
            &server,
            &format!("/api/v1/export/templates/{id}"),
            Some(&daniel)
        )
        .status,
        404
    );

    let preview = post(
        &server,
        &format!("/api/v1/export/templates/{id}/preview"),
        Some(&margaret),
        "",
    );
    assert_eq!(preview.status, 200);
    assert!(
        preview
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(preview.text().contains("Custom heading for the review"));
    assert!(
        !preview.text().contains("Brontë"),
        "the preview shows sample data only"
    );

    let bad = post(
        &server,
        "/api/v1/export/templates",
        Some(&margaret),
        &serde_json::json!({"name": "Broken", "export_type": "progress_report", "format": "pdf",
            "template_content": "<h1>{{ header.patient_name }}</h1>\n<blink>no</blink>"})
        .to_string(),
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(bad.json()["field"], "template_content");
    assert!(
        bad.json()["message"].as_str().unwrap().contains("line 2"),
        "{}",
        bad.text()
    );

    let job = post(
        &server,
        "/api/v1/export/progress-report",
        Some(&margaret),
        &serde_json::json!({"patient_id": ZOE, "start_date": "2024-01-01", "end_date": "2026-12-31",
            "format": "pdf", "template_id": id}).to_string(),
    );
    assert_eq!(job.status, 202, "{}", job.text());
    let job_id = job.json()["id"].as_str().unwrap().to_owned();
    let done = wait_for_job(&server, &margaret, &job_id);
    assert_eq!(done["status"], "completed", "{done}");
    let pdf = get(
        &server,
        &format!("/api/v1/export/download/{job_id}"),
        Some(&margaret),
    );
    let text = pdf_text(&pdf.body);
    assert!(text.contains("Custom heading for the review"), "{text}");
    assert!(text.contains("Brontë-Lefèvre"));

    let replaced = call(
        "PUT",
        &server.url(&format!("/api/v1/export/templates/{id}")),
        Some(&margaret),
        Some(
            &serde_json::json!({"name": "Quarterly review v2", "export_type": "progress_report",
            "format": "docx", "template_content": source})
            .to_string(),
        ),
        &[],
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(replaced.json()["name"], "Quarterly review v2");
    let deleted = call(
        "DELETE",
        &server.url(&format!("/api/v1/export/templates/{id}")),
        Some(&margaret),
        None,
        &[],
    );
    assert_eq!(deleted.status, 204);
    assert_eq!(
        get(
            &server,
            &format!("/api/v1/export/templates/{id}"),
            Some(&margaret)
        )
        .status,
        404
    );
    assert!(server.stop().success());
}
