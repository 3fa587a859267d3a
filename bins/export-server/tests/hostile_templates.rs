//! Custom templates are users' programs running in the server: each hostile one is answered with
//! a 4xx naming its cause within 3 s, and the server answers `/healthz` after every one. Before
//! the sandbox, the first two rows aborted the whole process (a stack overflow), the third
//! allocated 8 GB and aborted it, and the next ran without end. Over real HTTP, on SQLite and on
//! PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

test_on_both_backends! {
    hostile_templates_are_refused_within_three_seconds_and_the_server_keeps_serving,
    a_template_that_explodes_only_on_real_records_fails_its_job_and_nothing_else,
}

/// `{% set a = a + a %}` `n` times: a list of 2^n items that costs almost nothing until it is
/// printed or turned into text.
fn doublings(n: usize) -> String {
    "{% set a = a + a %}".repeat(n)
}

/// (what the row is, the template, a word the refusal must contain).
fn hostile() -> Vec<(&'static str, String, &'static str)> {
    let string_doubled = format!(
        "{{% set s = \"x\" %}}{}<p>{{{{ s | length }}}}</p>",
        "{% set s = s ~ s %}".repeat(40)
    );
    vec![
        (
            "includes itself",
            "{% include \"custom.html\" %}".into(),
            "itself",
        ),
        (
            "extends itself",
            "{% extends \"custom.html\" %}".into(),
            "itself",
        ),
        (
            "imports itself",
            "{% import \"custom.html\" as me %}<p>{{ me.x() }}</p>".into(),
            "itself",
        ),
        (
            "includes a name it computes",
            "{% include \"cus\" ~ \"tom.html\" %}".into(),
            "in quotes",
        ),
        (
            "self-recursive macro",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}<p>{{ f(1) }}</p>".into(),
            "calls itself",
        ),
        (
            "macros calling each other",
            "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}<p>{{ a() }}</p>"
                .into(),
            "calls itself",
        ),
        (
            "a macro handed itself",
            "{% macro f(g) %}{{ g(g) }}{% endmacro %}<p>{{ f(f) }}</p>".into(),
            "deeper than",
        ),
        (
            "range of a billion (Tera's spelling)",
            "<p>{{ range(end=1000000000) | length }}</p>".into(),
            "line 1",
        ),
        (
            "range of a billion",
            "<p>{{ range(1000000000) | length }}</p>".into(),
            "at most 10000",
        ),
        (
            "three nested loops of 2000",
            "{% for i in range(2000) %}{% for j in range(2000) %}{% for k in range(2000) %}\
             {% endfor %}{% endfor %}{% endfor %}"
                .into(),
            "more work",
        ),
        (
            "a string doubled 40 times",
            string_doubled,
            "more work",
        ),
        (
            "a string doubled 40 times with set_global (Tera's spelling)",
            format!(
                "{{% set_global s = \"x\" %}}{}",
                "{% set_global s = s ~ s %}".repeat(40)
            ),
            "line 1",
        ),
        (
            "a loop of a hundred million",
            "{% for i in range(100000000) %}x{% endfor %}".into(),
            "at most 10000",
        ),
        (
            "a list doubled 30 times, printed",
            format!("{{% set a = [1] %}}{}<p>{{{{ [a] }}}}</p>", doublings(30)),
            "went past",
        ),
        (
            "a list doubled 30 times, turned into text",
            format!(
                "{{% set a = [1] %}}{}<p>{{{{ a | string | length }}}}</p>",
                doublings(30)
            ),
            "went past",
        ),
        (
            "a repeated list turned into text",
            "<p>{{ ((range(10000) | list) * 10000) | string | length }}</p>".into(),
            "went past",
        ),
        (
            "ten megabytes of markup",
            "<p>{% for i in range(10000) %}{{ \"x\" * 1000 }}{% endfor %}</p>".into(),
            "5000000 bytes",
        ),
        (
            "an indent of a billion",
            "<p>{{ \"x\" | indent(1000000000) }}</p>".into(),
            "more work",
        ),
        (
            "expressions nested ten thousand deep",
            format!("<p>{{{{ {}1{} }}}}</p>", "(".repeat(10_000), ")".repeat(10_000)),
            "line 1",
        ),
    ]
}

fn hostile_templates_are_refused_within_three_seconds_and_the_server_keeps_serving(
    db: &TestDatabase,
) {
    let server = Server::start(db, &[]);
    let margaret = token(MARGARET, "therapist");
    for (i, (row, source, cause)) in hostile().into_iter().enumerate() {
        let body = serde_json::json!({"name": format!("Hostile {i}"),
            "export_type": "progress_report", "format": "pdf", "template_content": source})
        .to_string();
        let started = Instant::now();
        let reply = post(&server, "/api/v1/export/templates", Some(&margaret), &body);
        let took = started.elapsed();
        assert_eq!(reply.status, 422, "{row}: {}", reply.text());
        assert!(took < Duration::from_secs(3), "{row}: answered in {took:?}");
        let refusal = reply.json();
        assert_eq!(refusal["field"], "template_content", "{row}: {refusal}");
        let message = refusal["message"].as_str().unwrap_or_default();
        assert!(message.contains(cause), "{row}: {message:?}");
        let health = get(&server, "/healthz", None);
        assert_eq!(health.status, 200, "{row}: the server stopped answering");
    }
    // Nothing hostile was saved.
    let listed = get(&server, "/api/v1/export/templates", Some(&margaret)).json();
    assert!(
        !listed.to_string().contains("Hostile"),
        "a hostile template was saved: {listed}"
    );
}

fn a_template_that_explodes_only_on_real_records_fails_its_job_and_nothing_else(db: &TestDatabase) {
    let server = Server::start(db, &[]);
    let margaret = token(MARGARET, "therapist");
    // The sample context has one session, so the check at save never takes this branch; Zoë's
    // records do.
    let source = format!(
        "<h1>{{{{ header.title }}}}</h1>{{% if session_count > 3 %}}{{% set a = [1] %}}{}\
         <p>{{{{ a | string | length }}}}</p>{{% endif %}}",
        doublings(30)
    );
    let created = post(
        &server,
        "/api/v1/export/templates",
        Some(&margaret),
        &serde_json::json!({"name": "Fragile", "export_type": "progress_report",
            "format": "pdf", "template_content": source})
        .to_string(),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let template = created.json()["id"].as_str().unwrap().to_owned();
    let submitted = post(
        &server,
        "/api/v1/export/progress-report",
        Some(&margaret),
        &serde_json::json!({"patient_id": ZOE, "start_date": "2024-01-01",
            "end_date": "2026-12-31", "format": "pdf", "template_id": template})
        .to_string(),
    );
    assert_eq!(submitted.status, 202, "{}", submitted.text());
    let id = submitted.json()["id"].as_str().unwrap().to_owned();
    let job = wait_for_job(&server, &margaret, &id);
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(
        job["attempts"], 1,
        "a template past its limits is not retried: {job}"
    );
    let reason = job["error_message"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&template) && reason.contains("went past"),
        "{reason:?}"
    );
    assert!(
        !reason.contains("Zo"),
        "the reason quotes no records: {reason:?}"
    );
    assert_eq!(get(&server, "/healthz", None).status, 200);
    // The server still produces exports.
    let plain = post(
        &server,
        "/api/v1/export/progress-report",
        Some(&margaret),
        &serde_json::json!({"patient_id": ZOE, "start_date": "2024-01-01",
            "end_date": "2026-12-31", "format": "pdf"})
        .to_string(),
    );
    assert_eq!(plain.status, 202, "{}", plain.text());
    let id = plain.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_for_job(&server, &margaret, &id)["status"], "completed");
}
