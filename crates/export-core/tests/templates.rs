//! Document templates through the engine on SQLite and PostgreSQL: who may list, read, create,
//! change and delete which template; bad sources and duplicate names as field errors; previews
//! from sample data; and exports laid out by the template they name, read back from the
//! downloaded PDF (pdftotext) and DOCX (python-docx).

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, TimeZone, Utc};
use export_core::engine::{Actor, EngineError, ExportEngine, ExportRequest, RequestOrigin};
use export_domain::{
    ExportFormat, ExportTemplate, ExportType, JobStatus, ProgressReportInput, Role,
    SessionNotesInput, TemplateInput, TemplateRequest,
};
use export_store::testing::TestDatabase;
use export_store::{schedules, templates, test_on_both_backends};
use uuid::Uuid;

mod common;
use common::*;

/// Text every export about Zoë carries: her surname.
const MARKER: &str = "Brontë-Lefèvre";
/// The heading only the custom template writes.
const HEADING: &str = "Custom heading for Zoë's report";

/// A progress-report template that frames the document like the built-in ones and writes
/// `HEADING`.
const PROGRESS_TEMPLATE: &str = "{% extends \"base.html\" %}\n\
    {% block content %}\n\
    <h2>Custom heading for Zoë's report</h2>\n\
    <p>Sessions in this period: {{ session_count }}</p>\n\
    {% endblock content %}";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn template_request(name: &str, export_type: &str, format: &str, source: &str) -> TemplateRequest {
    TemplateInput {
        name: name.into(),
        description: Some("for tests".into()),
        export_type: export_type.into(),
        format: format.into(),
        template_content: source.into(),
        include_sections: BTreeMap::new(),
    }
    .validate()
    .unwrap()
}

fn progress_template(name: &str) -> TemplateRequest {
    template_request(name, "progress_report", "pdf", PROGRESS_TEMPLATE)
}

/// A system template, installed through the store as a deployment would.
fn install_system_template(db: &TestDatabase, name: &str) -> ExportTemplate {
    let template = ExportTemplate {
        id: Uuid::new_v4(),
        name: name.into(),
        description: None,
        export_type: ExportType::ProgressReport,
        format: ExportFormat::Pdf,
        template_content: "<h1>{{ header.title }}</h1>\n<p>{{ header.patient_name }}</p>".into(),
        include_sections: BTreeMap::new(),
        is_system: true,
        created_by: None,
        created_at: now(),
        updated_at: now(),
    };
    let mut conn = db.store.connection().unwrap();
    templates::insert_template(&mut conn, &template).unwrap();
    template
}

/// The message of the one field error `result` must be, on `field`.
fn field_error<T: std::fmt::Debug>(result: Result<T, EngineError>, field: &str) -> String {
    match result {
        Err(EngineError::Invalid(problems)) => {
            assert_eq!(problems.errors.len(), 1, "{problems}");
            assert_eq!(problems.errors[0].field, field, "{problems}");
            problems.errors[0].message.clone()
        }
        other => panic!("expected a field error on {field}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, EngineError>, id: Uuid) {
    match result {
        Err(EngineError::TemplateNotFound(missing)) => assert_eq!(missing, id),
        other => panic!("expected template {id} not found, got {other:?}"),
    }
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, EngineError>) {
    assert!(
        matches!(result, Err(EngineError::Forbidden(_))),
        "expected forbidden, got {result:?}"
    );
}

fn progress_report(format: &str, template_id: Option<Uuid>) -> ExportRequest {
    ExportRequest::ProgressReport(
        ProgressReportInput {
            patient_id: ZOE.into(),
            start_date: "2024-01-01".into(),
            end_date: "2026-12-31".into(),
            format: format.into(),
            template_id: template_id.map(|id| id.to_string()),
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

fn download(engine: &ExportEngine, who: &Actor, job: Uuid) -> Vec<u8> {
    let (_, mut reader) = engine
        .download(who, job, &RequestOrigin::default(), now())
        .unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    bytes
}

test_on_both_backends! {
    owners_manage_their_templates_and_see_only_theirs_and_the_system_ones,
    bad_sources_and_duplicate_names_are_field_errors,
    previews_show_sample_data_and_no_patient,
    exports_are_laid_out_by_the_template_they_name,
    a_template_deleted_before_its_export_runs_fails_the_job_for_good,
    a_template_failing_on_real_records_fails_the_job_with_its_line_only,
}

fn owners_manage_their_templates_and_see_only_theirs_and_the_system_ones(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = actor(MARGARET, Role::Therapist);
    let daniel = actor(DANIEL, Role::Therapist);
    let helen = actor(HELEN, Role::Admin);
    let zoe = actor(ZOE, Role::Patient);
    let system = install_system_template(db, "Standard progress report");

    let monthly = engine
        .create_template(&margaret, progress_template("Monthly"), now())
        .unwrap();
    assert_eq!(monthly.created_by, Some(margaret.user_id));
    assert!(!monthly.is_system);
    let notes = engine
        .create_template(
            &margaret,
            template_request(
                "Brief notes",
                "session_notes",
                "docx",
                "<h1>{{ header.title }}</h1>",
            ),
            now(),
        )
        .unwrap();
    let daniels = engine
        .create_template(&daniel, progress_template("Monthly"), now())
        .unwrap();
    let helens = engine
        .create_template(&helen, progress_template("Audit layout"), now())
        .unwrap();
    assert_eq!(helens.created_by, Some(helen.user_id), "admins may create");
    assert_forbidden(engine.create_template(&zoe, progress_template("Mine"), now()));
    assert_forbidden(engine.list_templates(&zoe, None));
    assert_forbidden(engine.template(&zoe, system.id));

    // System templates first, then by name; another therapist's never.
    let names = |list: Vec<ExportTemplate>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        names(engine.list_templates(&margaret, None).unwrap()),
        vec![system.id, notes.id, monthly.id]
    );
    assert_eq!(
        names(
            engine
                .list_templates(&margaret, Some(ExportType::ProgressReport))
                .unwrap()
        ),
        vec![system.id, monthly.id]
    );
    assert_eq!(
        names(engine.list_templates(&daniel, None).unwrap()),
        vec![system.id, daniels.id]
    );

    assert_eq!(engine.template(&margaret, monthly.id).unwrap(), monthly);
    assert_eq!(engine.template(&daniel, system.id).unwrap(), system);
    assert_not_found(engine.template(&margaret, daniels.id), daniels.id);
    assert_not_found(engine.template(&helen, monthly.id), monthly.id);
    let nowhere = Uuid::new_v4();
    assert_not_found(engine.template(&margaret, nowhere), nowhere);

    // Only the owner changes a template; a system template no one does.
    let later = now() + chrono::Duration::hours(1);
    let mut renamed_request = progress_template("Monthly, revised");
    renamed_request.format = ExportFormat::Docx;
    let renamed = engine
        .update_template(&margaret, monthly.id, renamed_request, later)
        .unwrap();
    assert_eq!(renamed.name, "Monthly, revised");
    assert_eq!(renamed.format, ExportFormat::Docx);
    assert_eq!(renamed.created_at, monthly.created_at);
    assert_eq!(renamed.updated_at, later);
    assert_eq!(engine.template(&margaret, monthly.id).unwrap(), renamed);
    assert_not_found(
        engine.update_template(&daniel, monthly.id, progress_template("Taken over"), later),
        monthly.id,
    );
    for who in [&margaret, &helen] {
        assert_forbidden(engine.update_template(
            who,
            system.id,
            progress_template("Standard, mine"),
            later,
        ));
        assert_forbidden(engine.delete_template(who, system.id));
    }
    let changed = engine.update_template(
        &margaret,
        monthly.id,
        template_request("Monthly", "treatment_summary", "pdf", "<p>x</p>"),
        later,
    );
    assert!(
        matches!(
            changed,
            Err(EngineError::TemplateTypeFixed {
                stored: export_domain::ExportType::ProgressReport
            })
        ),
        "{changed:?}"
    );

    assert_not_found(engine.delete_template(&daniel, monthly.id), monthly.id);
    engine.delete_template(&margaret, monthly.id).unwrap();
    assert_not_found(engine.template(&margaret, monthly.id), monthly.id);
    assert_not_found(engine.delete_template(&margaret, monthly.id), monthly.id);
    assert_eq!(
        names(engine.list_templates(&margaret, None).unwrap()),
        vec![system.id, notes.id]
    );
    assert_eq!(
        engine.template(&daniel, daniels.id).unwrap(),
        daniels,
        "another owner's template of the same name is untouched"
    );

    // A template a scheduled report uses stays until the schedule goes.
    let schedule = weekly_schedule(daniel.user_id, daniels.id, now());
    let mut conn = db.store.connection().unwrap();
    schedules::insert_schedule(&mut conn, &schedule).unwrap();
    match engine.delete_template(&daniel, daniels.id) {
        Err(EngineError::TemplateInUse(id)) => assert_eq!(id, daniels.id),
        other => panic!("expected the template in use, got {other:?}"),
    }
    schedules::delete_schedule(&mut conn, schedule.id).unwrap();
    engine.delete_template(&daniel, daniels.id).unwrap();
}

fn bad_sources_and_duplicate_names_are_field_errors(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = actor(MARGARET, Role::Therapist);
    let daniel = actor(DANIEL, Role::Therapist);

    // Each bad source is refused on template_content with its line and cause.
    let bad_sources = [
        (
            "<h1>{{ header.title }}</h1>\n{% if session_count %}\n<p>x</p>",
            "line 2: {% if %} is never closed; add {% endif %}",
        ),
        (
            "<h1>{{ header.title }}</h1>\n\n<p>{{ patient.nme }}</p>",
            "line 3: `patient.nme` is not defined",
        ),
        (
            "<h1>{{ header.title }}</h1>\n<script>alert(1)</script>",
            "line 2: <script> is not allowed in a template",
        ),
    ];
    for (source, expected) in bad_sources {
        let message = field_error(
            engine.create_template(
                &margaret,
                template_request("Broken", "progress_report", "pdf", source),
                now(),
            ),
            "template_content",
        );
        assert!(message.starts_with(expected), "{message:?} for\n{source}");
    }
    assert!(
        engine.list_templates(&margaret, None).unwrap().is_empty(),
        "nothing refused was saved"
    );

    // Templates lay out documents only: validation refuses tabular formats and datasets.
    for (export_type, format, field) in [
        ("session_notes", "csv", "format"),
        ("progress_report", "json", "format"),
        ("dataset", "pdf", "export_type"),
    ] {
        let problems = TemplateInput {
            name: "Table".into(),
            export_type: export_type.into(),
            format: format.into(),
            template_content: "<p>x</p>".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(problems.errors[0].field, field, "{problems}");
    }

    // A name is unique per owner: taken for Margaret, free for Daniel.
    let monthly = engine
        .create_template(&margaret, progress_template("Monthly"), now())
        .unwrap();
    let taken = engine.create_template(&margaret, progress_template("Monthly"), now());
    assert!(
        matches!(taken, Err(EngineError::TemplateNameTaken)),
        "{taken:?}"
    );
    engine
        .create_template(&daniel, progress_template("Monthly"), now())
        .unwrap();
    let weekly = engine
        .create_template(&margaret, progress_template("Weekly"), now())
        .unwrap();
    let taken = engine.update_template(&margaret, weekly.id, progress_template("Monthly"), now());
    assert!(
        matches!(taken, Err(EngineError::TemplateNameTaken)),
        "{taken:?}"
    );
    field_error(
        engine.update_template(
            &margaret,
            monthly.id,
            template_request("Monthly", "progress_report", "pdf", "<p>{{ nope }}</p>"),
            now(),
        ),
        "template_content",
    );
    assert_eq!(
        engine.template(&margaret, monthly.id).unwrap(),
        monthly,
        "a refused update changes nothing"
    );
}

fn previews_show_sample_data_and_no_patient(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = actor(MARGARET, Role::Therapist);
    let daniel = actor(DANIEL, Role::Therapist);
    let template = engine
        .create_template(&margaret, progress_template("Monthly"), now())
        .unwrap();
    let system = install_system_template(db, "Standard progress report");

    let preview = engine.preview_template(&margaret, template.id).unwrap();
    assert!(preview.starts_with("<!DOCTYPE html>"), "{preview:.200}");
    for expected in [
        "Custom heading for Zoë&#39;s report",
        "Sample Patient",
        "Sessions in this period: 1",
        "CONFIDENTIAL - PROTECTED HEALTH INFORMATION",
    ] {
        assert!(
            preview.contains(expected),
            "{expected:?} missing in\n{preview}"
        );
    }
    for absent in [MARKER, "Zoë Brontë"] {
        assert!(!preview.contains(absent), "{absent:?} in\n{preview}");
    }
    let system_preview = engine.preview_template(&daniel, system.id).unwrap();
    assert!(system_preview.contains("Sample Patient"));
    assert_not_found(engine.preview_template(&daniel, template.id), template.id);
}

fn exports_are_laid_out_by_the_template_they_name(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = actor(MARGARET, Role::Therapist);
    let daniel = actor(DANIEL, Role::Therapist);
    let origin = RequestOrigin::default();
    let template = engine
        .create_template(&margaret, progress_template("Monthly"), now())
        .unwrap();

    let mut jobs = Vec::new();
    for format in ["pdf", "docx", "json"] {
        let job = engine
            .submit(
                &margaret,
                progress_report(format, Some(template.id)),
                None,
                &origin,
                now(),
            )
            .unwrap();
        assert_eq!(job.template_id, Some(template.id));
        jobs.push((format, job.id));
    }
    let built_in = engine
        .submit(
            &margaret,
            progress_report("pdf", None),
            None,
            &origin,
            now(),
        )
        .unwrap();

    // The template must be the requester's (or a system one) and of the request's type.
    let daniels = engine
        .create_template(&daniel, progress_template("Monthly"), now())
        .unwrap();
    let notes = engine
        .create_template(
            &margaret,
            template_request(
                "Notes",
                "session_notes",
                "pdf",
                "<h1>{{ header.title }}</h1>",
            ),
            now(),
        )
        .unwrap();
    for (template_id, expected) in [
        (daniels.id, "there is no such template"),
        (Uuid::new_v4(), "there is no such template"),
        (
            notes.id,
            "the template lays out session_notes exports, not progress_report",
        ),
    ] {
        let message = field_error(
            engine.submit(
                &margaret,
                progress_report("pdf", Some(template_id)),
                None,
                &origin,
                now(),
            ),
            "template_id",
        );
        assert_eq!(message, expected);
    }
    let session = {
        let mut conn = db.store.connection().unwrap();
        export_store::clinical::list_patient_sessions(
            &mut conn,
            Uuid::parse_str(ZOE).unwrap(),
            Some(export_domain::SessionStatus::Processed),
            None,
            None,
        )
        .unwrap()[0]
            .id
    };
    let wrong_type = ExportRequest::SessionNotes(
        SessionNotesInput {
            session_ids: vec![session.to_string()],
            format: "pdf".into(),
            template_id: Some(template.id.to_string()),
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    field_error(
        engine.submit(&margaret, wrong_type, None, &origin, now()),
        "template_id",
    );

    while engine.run_next("worker", now()).unwrap().is_some() {}
    for (format, id) in jobs {
        let job = engine.job(&margaret, id).unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{format}: {job:?}");
        let bytes = download(&engine, &margaret, id);
        let text = match format {
            "pdf" => pdf_text(&bytes),
            "docx" => docx_text(&bytes),
            _ => String::from_utf8(bytes).unwrap(),
        };
        assert!(text.contains(MARKER), "{format} names the patient:\n{text}");
        if format == "json" {
            assert!(!text.contains(HEADING), "JSON is the data; no template");
        } else {
            assert!(text.contains(HEADING), "{format}:\n{text}");
            assert!(text.contains("Sessions in this period:"), "{format}");
            assert!(
                !text.contains("Treatment Goals"),
                "{format}: the custom layout, not the built-in one"
            );
        }
    }
    let text = pdf_text(&download(&engine, &margaret, built_in.id));
    assert!(text.contains("Treatment Goals") && !text.contains(HEADING));

    // A finished export outlives its template: the file stays, the link goes.
    engine.delete_template(&margaret, template.id).unwrap();
    let pdf_job = job_with_template(&engine, &margaret, ExportFormat::Pdf);
    assert_eq!(pdf_job.template_id, None);
    assert!(pdf_text(&download(&engine, &margaret, pdf_job.id)).contains(HEADING));
}

/// `actor`'s completed job in `format` whose request named a template.
fn job_with_template(
    engine: &ExportEngine,
    actor: &Actor,
    format: ExportFormat,
) -> export_domain::ExportJob {
    engine
        .list_jobs(actor, Some(JobStatus::Completed), None, 100)
        .unwrap()
        .into_iter()
        .find(|j| j.format == format && j.parameters["template_id"].is_string())
        .unwrap()
}

fn a_template_deleted_before_its_export_runs_fails_the_job_for_good(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = actor(MARGARET, Role::Therapist);
    let origin = RequestOrigin::default();
    let template = engine
        .create_template(&margaret, progress_template("Monthly"), now())
        .unwrap();
    let docx = engine
        .submit(
            &margaret,
            progress_report("docx", Some(template.id)),
            None,
            &origin,
            now(),
        )
        .unwrap();
    let json = engine
        .submit(
            &margaret,
            progress_report("json", Some(template.id)),
            None,
            &origin,
            now(),
        )
        .unwrap();
    engine.delete_template(&margaret, template.id).unwrap();
    while engine.run_next("worker", now()).unwrap().is_some() {}

    let failed = engine.job(&margaret, docx.id).unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1, "no retry brings a template back");
    assert_eq!(
        failed.error_message.as_deref(),
        Some(
            format!(
                "template {} cannot be used: it was deleted after the export was requested",
                template.id
            )
            .as_str()
        )
    );
    let done = engine.job(&margaret, json.id).unwrap();
    assert_eq!(
        done.status,
        JobStatus::Completed,
        "JSON never used the template: {:?}",
        done.error_message
    );
}

fn a_template_failing_on_real_records_fails_the_job_with_its_line_only(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = actor(MARGARET, Role::Therapist);
    // The sample has one session, so the check never takes the branch that Zoë's records take.
    let source = "<h1>{{ header.patient_name }}</h1>\n\
        {% if session_count > 3 %}\n\
        <p>{{ header.patient_name }} {{ no_such_field }}</p>\n\
        {% endif %}";
    let template = engine
        .create_template(
            &margaret,
            template_request("Fragile", "progress_report", "pdf", source),
            now(),
        )
        .unwrap();
    let job = engine
        .submit(
            &margaret,
            progress_report("pdf", Some(template.id)),
            None,
            &RequestOrigin::default(),
            now(),
        )
        .unwrap();
    while engine.run_next("worker", now()).unwrap().is_some() {}
    let failed = engine.job(&margaret, job.id).unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1);
    let message = failed.error_message.unwrap();
    assert_eq!(
        message,
        format!(
            "template {} cannot be used: it failed to render this export's records at line 3",
            template.id
        )
    );
}
