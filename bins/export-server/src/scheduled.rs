//! Scheduled-report routes: create, list, read (with recent runs), change (PATCH, also pause and
//! resume), delete, run now, and preview the next run times (of a saved report, or of one before
//! it is saved). The rules are export-schedule's and export-core's.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use export_domain::{ScheduledReport, ScheduledReportInput};
use export_schedule::scheduler::checked;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, parse_json};
use crate::http::{body, json, parse_id, request_id, schedule_call as call};
use crate::query::{Bounded, Query};
use crate::state::AppState;

type Data = web::Data<AppState>;
type Answer = Result<HttpResponse, ApiError>;

fn scheduler(
    state: &AppState,
) -> Result<std::sync::Arc<export_schedule::scheduler::Scheduler>, ApiError> {
    state
        .scheduler
        .clone()
        .ok_or_else(|| ApiError::unavailable("scheduled reports are not available in this process"))
}

/// A scheduled report as clients see it, with its latest runs when read alone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    #[serde(flatten)]
    report: ScheduledReport,
    /// When one report is read: its 20 most recent runs, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    recent_runs: Option<Vec<export_domain::ScheduleRun>>,
}

/// The caller's scheduled reports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportList {
    scheduled_reports: Vec<ScheduledReport>,
}

/// The next times a schedule runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NextRuns {
    /// Instants in UTC, earliest first, each strictly after now; fewer than asked when the
    /// schedule runs fewer times.
    #[schema(max_items = 100)]
    next_runs: Vec<chrono::DateTime<Utc>>,
}

/// The caller's notification preference; null when they never set one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationSetting {
    notifications: Option<export_domain::NotificationPreference>,
}

/// Some members of a `ScheduledReportInput`, each replacing the stored value whole, and
/// `is_active`. Unknown fields are refused (400 `invalid_field`). A shape for the document: the
/// handler lays the members over the stored report and checks the result as a whole.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReportPatch {
    template_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    schedule_type: Option<export_domain::ScheduleType>,
    schedule_config: Option<export_domain::ScheduleConfigInput>,
    /// An IANA time zone; null means UTC.
    #[schema(pattern = "^[A-Za-z0-9/_+-]{1,64}$", max_length = 64)]
    timezone: Option<String>,
    parameters: Option<export_domain::schema::ScheduleParameters>,
    delivery_method: Option<export_domain::DeliveryMethod>,
    #[schema(max_items = 20)]
    email_recipients: Option<Vec<export_domain::schema::Email>>,
    attach_file: Option<bool>,
    /// `false` pauses the report, `true` resumes it (from now: missed runs are not made up).
    is_active: Option<bool>,
}

fn location(id: Uuid) -> String {
    format!("/api/v1/export/scheduled/{id}")
}

/// `?count=` of a preview: 1 to 100, default 5.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
    count: Option<Bounded<1, 100>>,
}

impl CountQuery {
    fn count(&self) -> usize {
        self.count.map_or(5, |Bounded(n)| n as usize)
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/export/scheduled",
    operation_id = "createScheduledReport",
    tag = "Scheduled reports",
    summary = "Schedule a report",
    description = "Saves a report that runs by itself: a progress report, treatment summary or full record template (a system template or the caller's own), the patient it is about, when it runs and where it goes. It is checked as a manual export of the same template would be, now, plus the schedule; it starts active, with `next_run_at` the first due time after now. A caller has at most one active schedule per template and patient. Therapists only. Saving creates no export job and does not count against the hourly export limit.",
    request_body(content = export_domain::ScheduledReportInput, description = "The scheduled report."),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 201,
            description = "The scheduled report as saved; `Location` is its address.",
            body = crate::scheduled::ReportView,
            headers(("Location" = String, description = "The new resource's address."))
        ),
        (
            status = 400,
            description = "The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `schedule_config.colour`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Only therapists schedule reports (administrators and patients are refused), and only about a patient they have an active care relationship with (`forbidden`).",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 409,
            description = "The caller already has an active schedule of this template for this patient (`schedule_taken`, `field: template_id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The scheduled report is not valid (`invalid`; every problem in `errors`, the first repeated in `field` and `message`): a missing or malformed field (`template_id`, `patient_id`, `schedule_type`, `delivery_method`, `timezone`, `schedule_config.time`, `schedule_config.hour`, `schedule_config.day_of_week`, `schedule_config.day_of_month`, `schedule_config.cron`, `email_recipients`, `email_recipients[i]`, `attach_file`); a `schedule_config` field the schedule type does not use; a time zone that is not in the IANA database (`timezone`); a cron expression that does not parse (`schedule_config.cron`); a template that does not exist, is not visible to the caller or is not a progress_report, treatment_summary or full_record template (`template_id`); no patient (`patient_id`); `parameters.period_days` outside 1 to 366 (`parameters.period_days`); a treatment summary `parameters.purpose` that is not a purpose (`purpose`); email delivery without recipients (`email_recipients`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    let input: ScheduledReportInput = parse_json(&body(&state, payload).await?)?;
    let request = checked(&input).map_err(|e| ApiError::from_schedule(e, &request_id(&req)))?;
    let scheduler = scheduler(&state)?;
    let report = call(&req, move || {
        scheduler.create(&caller.0, request, Utc::now())
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location(report.id)))
        .json(ReportView {
            report,
            recent_runs: None,
        }))
}

#[utoipa::path(
    get,
    path = "/api/v1/export/scheduled",
    operation_id = "listScheduledReports",
    tag = "Scheduled reports",
    summary = "List scheduled reports",
    description = "The caller's scheduled reports, active and paused, without their runs (read one for those). Anyone may ask; only therapists have any.",
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The caller's scheduled reports.",
            body = crate::scheduled::ReportList
        ),
    )
)]
pub async fn list(req: HttpRequest, state: Data, caller: Caller) -> Answer {
    let scheduler = scheduler(&state)?;
    let reports = call(&req, move || scheduler.list(&caller.0)).await?;
    Ok(json(
        StatusCode::OK,
        &ReportList {
            scheduled_reports: reports,
        },
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/export/scheduled/{id}",
    operation_id = "getScheduledReport",
    tag = "Scheduled reports",
    summary = "Read a scheduled report",
    description = "One of the caller's scheduled reports, with its 20 most recent runs, newest first, in `recent_runs`.",
    params(
        ("id" = Uuid, Path, description = "The scheduled report's id."),
    ),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The scheduled report and its recent runs.",
            body = crate::scheduled::ReportView
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such scheduled report of the caller's (`not_found`); another user's is answered as if it did not exist.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn get(req: HttpRequest, state: Data, caller: Caller, id: web::Path<String>) -> Answer {
    let id = parse_id(&id, "id")?;
    let scheduler = scheduler(&state)?;
    let view = call(&req, move || {
        Ok(ReportView {
            report: scheduler.get(&caller.0, id)?,
            recent_runs: Some(scheduler.runs(&caller.0, id, 20)?),
        })
    })
    .await?;
    Ok(json(StatusCode::OK, &view))
}

/// The stored report in the shape a client sends, to lay a PATCH over.
fn as_input(report: &ScheduledReport) -> serde_json::Value {
    let config = &report.schedule_config;
    serde_json::json!({
        "template_id": report.template_id,
        "patient_id": report.patient_id,
        "schedule_type": report.schedule_type,
        "schedule_config": {
            "time": config.time,
            "day_of_week": config.day_of_week,
            "day_of_month": config.day_of_month,
            "cron": config.cron,
        },
        "timezone": report.timezone,
        "parameters": report.parameters,
        "delivery_method": report.delivery_method,
        "email_recipients": report.email_recipients,
        "attach_file": report.attach_file,
    })
}

#[utoipa::path(
    patch,
    path = "/api/v1/export/scheduled/{id}",
    operation_id = "updateScheduledReport",
    tag = "Scheduled reports",
    summary = "Change, pause or resume a scheduled report",
    description = "Changes some of a scheduled report's settings: the body is a partial `ScheduledReportInput` whose members replace the stored ones (a member replaces the whole stored value: a `schedule_config` given replaces the stored one, it is not merged into it; `timezone: null` means UTC), plus `is_active` to pause (`false`) or resume (`true`). The result is checked as at creation, against the caller's rights now. `next_run_at` is recomputed from now: runs missed while paused are not made up. An empty object re-checks the report and changes nothing else.",
    params(
        ("id" = Uuid, Path, description = "The scheduled report's id."),
    ),
    request_body(content = crate::scheduled::ReportPatch, description = "The members to change."),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The scheduled report as saved.",
            body = crate::scheduled::ReportView
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`); or The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `schedule_config.colour`); or `is_active` is not true or false (`invalid_field`, `field: is_active`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "The caller may no longer make this report: the care relationship with the patient has ended (`forbidden`).",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such scheduled report of the caller's (`not_found`); another user's is answered as if it did not exist.",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 409,
            description = "Resuming the report, or changing the template or patient of an active one, when the caller already has another active schedule of the template for the patient (`schedule_taken`, `field: is_active`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The scheduled report is not valid (`invalid`; every problem in `errors`, the first repeated in `field` and `message`): a missing or malformed field (`template_id`, `patient_id`, `schedule_type`, `delivery_method`, `timezone`, `schedule_config.time`, `schedule_config.hour`, `schedule_config.day_of_week`, `schedule_config.day_of_month`, `schedule_config.cron`, `email_recipients`, `email_recipients[i]`, `attach_file`); a `schedule_config` field the schedule type does not use; a time zone that is not in the IANA database (`timezone`); a cron expression that does not parse (`schedule_config.cron`); a template that does not exist, is not visible to the caller or is not a progress_report, treatment_summary or full_record template (`template_id`); no patient (`patient_id`); `parameters.period_days` outside 1 to 366 (`parameters.period_days`); a treatment summary `parameters.purpose` that is not a purpose (`purpose`); email delivery without recipients (`email_recipients`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn update(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let patch: serde_json::Map<String, serde_json::Value> =
        parse_json(&body(&state, payload).await?)?;
    let scheduler = scheduler(&state)?;
    if patch.len() == 1 && patch.get("is_active") == Some(&serde_json::Value::Bool(false)) {
        // Pausing needs no other check: a report whose patient is no longer cared for can stop.
        let report = call(&req, move || scheduler.pause(&caller.0, id, Utc::now())).await?;
        return Ok(json(
            StatusCode::OK,
            &ReportView {
                report,
                recent_runs: None,
            },
        ));
    }
    let current = {
        let scheduler = scheduler.clone();
        call(&req, move || scheduler.get(&caller.0, id)).await?
    };
    let mut merged = as_input(&current);
    let mut active = None;
    for (name, value) in patch {
        if name == "is_active" {
            active = Some(value.as_bool().ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_field",
                    "must be true or false",
                )
                .with_field("is_active")
            })?);
        } else {
            merged[name] = value;
        }
    }
    let input: ScheduledReportInput = parse_json(merged.to_string().as_bytes())?;
    let request = checked(&input).map_err(|e| ApiError::from_schedule(e, &request_id(&req)))?;
    let report = call(&req, move || {
        scheduler.update(&caller.0, id, request, active, Utc::now())
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &ReportView {
            report,
            recent_runs: None,
        },
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/export/scheduled/{id}",
    operation_id = "deleteScheduledReport",
    tag = "Scheduled reports",
    summary = "Delete a scheduled report",
    description = "Deletes one of the caller's scheduled reports and its run history. The export jobs its runs made stay, as any export does, until they expire.",
    params(
        ("id" = Uuid, Path, description = "The scheduled report's id."),
    ),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 204,
            description = "Deleted."
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such scheduled report of the caller's (`not_found`); another user's is answered as if it did not exist.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn delete(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let scheduler = scheduler(&state)?;
    call(&req, move || scheduler.delete(&caller.0, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/export/scheduled/{id}/run",
    operation_id = "runScheduledReport",
    tag = "Scheduled reports",
    summary = "Run a scheduled report now",
    description = "Runs one of the caller's scheduled reports now, outside its schedule (a paused one too): one run due now, which submits the export job as a scheduled run would, as the report's owner, checked by the engine at this moment. It does not move `next_run_at`. The request has no body.",
    params(
        ("id" = Uuid, Path, description = "The scheduled report's id."),
    ),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 202,
            description = "Accepted: the run. Its `status` is `submitted` (storage delivery) or `delivering` (email) with the job in `export_job_id`, and then `Content-Location` is the job to poll; or `refused`, with the reason in `error_message` and no job, when the engine refused the export (the owner may no longer export this patient, the template no longer fits).",
            body = export_domain::ScheduleRun,
            headers(("Content-Location" = String, description = "The address of the run's export job, `/api/v1/export/jobs/{id}`: poll it. Absent when the run was refused and made no job."))
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such scheduled report of the caller's (`not_found`); another user's is answered as if it did not exist.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The report was already run at this very instant (`field: id`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn run(req: HttpRequest, state: Data, caller: Caller, id: web::Path<String>) -> Answer {
    let id = parse_id(&id, "id")?;
    let scheduler = scheduler(&state)?;
    // A run made by hand is an export like any other: it counts against the hourly limit.
    let per_hour = Some(state.exports_per_hour);
    let run = call(&req, move || {
        scheduler.run_now(&caller.0, id, per_hour, Utc::now())
    })
    .await?;
    if let Some(waker) = &state.waker {
        waker.wake();
    }
    let mut response = HttpResponse::Accepted();
    if let Some(job) = run.export_job_id {
        response.insert_header((
            header::CONTENT_LOCATION,
            format!("/api/v1/export/jobs/{job}"),
        ));
    }
    Ok(response.json(run))
}

#[utoipa::path(
    get,
    path = "/api/v1/export/scheduled/{id}/preview",
    operation_id = "previewSavedScheduledReport",
    tag = "Scheduled reports",
    summary = "Preview a scheduled report's next runs",
    description = "The next `count` run times of one of the caller's scheduled reports after now, as its schedule computes them (a paused report's too: when it would run if resumed). Fewer when the schedule runs fewer times within the search horizon (`0 0 30 2 *` never runs).",
    params(
        ("id" = Uuid, Path, description = "The scheduled report's id."),
        ("count" = Option<i64>, Query, minimum = 1, maximum = 100, description = "How many run times to give."),
    ),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The next run times, earliest first.",
            body = crate::scheduled::NextRuns
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`); or `count` is not a whole number from 1 to 100, or a query parameter other than `count` was given (`field` names it)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such scheduled report of the caller's (`not_found`); another user's is answered as if it did not exist.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The stored schedule can no longer be computed (its time zone left the IANA database the server has) (`invalid`, `field: timezone`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn preview(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    Query(query): Query<CountQuery>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let count = query.count();
    let scheduler = scheduler(&state)?;
    let runs = call(&req, move || {
        scheduler.preview(&caller.0, id, Utc::now(), count)
    })
    .await?;
    Ok(json(StatusCode::OK, &NextRuns { next_runs: runs }))
}

#[utoipa::path(
    post,
    path = "/api/v1/export/scheduled/preview",
    operation_id = "previewScheduledReport",
    tag = "Scheduled reports",
    summary = "Preview a schedule before saving it",
    description = "The next `count` run times of a scheduled report that is not saved, checked exactly as saving it would be (so every refusal saving would give, this gives, except that an active schedule of the same template and patient is not a problem). Nothing is saved.",
    params(
        ("count" = Option<i64>, Query, minimum = 1, maximum = 100, description = "How many run times to give."),
    ),
    request_body(content = export_domain::ScheduledReportInput, description = "The scheduled report."),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The next run times, earliest first.",
            body = crate::scheduled::NextRuns
        ),
        (
            status = 400,
            description = "`count` is not a whole number from 1 to 100, or a query parameter other than `count` was given (`field` names it); or The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `schedule_config.colour`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Only therapists schedule reports (administrators and patients are refused), and only about a patient they have an active care relationship with (`forbidden`).",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 422,
            description = "The scheduled report is not valid (`invalid`; every problem in `errors`, the first repeated in `field` and `message`): a missing or malformed field (`template_id`, `patient_id`, `schedule_type`, `delivery_method`, `timezone`, `schedule_config.time`, `schedule_config.hour`, `schedule_config.day_of_week`, `schedule_config.day_of_month`, `schedule_config.cron`, `email_recipients`, `email_recipients[i]`, `attach_file`); a `schedule_config` field the schedule type does not use; a time zone that is not in the IANA database (`timezone`); a cron expression that does not parse (`schedule_config.cron`); a template that does not exist, is not visible to the caller or is not a progress_report, treatment_summary or full_record template (`template_id`); no patient (`patient_id`); `parameters.period_days` outside 1 to 366 (`parameters.period_days`); a treatment summary `parameters.purpose` that is not a purpose (`purpose`); email delivery without recipients (`email_recipients`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn preview_unsaved(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    Query(query): Query<CountQuery>,
    payload: web::Payload,
) -> Answer {
    let count = query.count();
    let input: ScheduledReportInput = parse_json(&body(&state, payload).await?)?;
    let request = checked(&input).map_err(|e| ApiError::from_schedule(e, &request_id(&req)))?;
    let scheduler = scheduler(&state)?;
    let runs = call(&req, move || {
        scheduler.preview_request(&caller.0, &request, Utc::now(), count)
    })
    .await?;
    Ok(json(StatusCode::OK, &NextRuns { next_runs: runs }))
}

/// A notification preference. Unknown fields are refused (400 `invalid_field`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationInput {
    /// Where the emails go.
    #[schema(value_type = export_domain::schema::Email)]
    email: String,
    /// An email when an export completes: a signed link, no patient data.
    #[serde(default)]
    on_completed: bool,
    /// An email when an export fails: its id, no patient data.
    #[serde(default)]
    on_failed: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/export/notifications",
    operation_id = "getNotifications",
    tag = "Scheduled reports",
    summary = "Your export notification preference",
    description = "Whether you get an email when one of your exports completes or fails.",
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The caller's notification preference (`null` when never set).",
            body = crate::scheduled::NotificationSetting
        ),
    )
)]
/// The caller's notification preference (`null` when never set).
pub async fn get_notifications(req: HttpRequest, state: Data, caller: Caller) -> Answer {
    let scheduler = scheduler(&state)?;
    let preference = call(&req, move || scheduler.notifications(&caller.0)).await?;
    Ok(json(
        StatusCode::OK,
        &NotificationSetting {
            notifications: preference,
        },
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/export/notifications",
    operation_id = "setNotifications",
    tag = "Scheduled reports",
    summary = "Opt in or out of export notifications",
    description = "From now on, an email to `email` when one of your exports completes (`on_completed`: a short notice with a signed link that expires) or fails (`on_failed`: the job id). The emails carry no patient data. Each finished export is notified at most once.",
    request_body(content = crate::scheduled::NotificationInput, description = "The preference."),
    responses(
        crate::openapi::GuardedSchedules,
        (
            status = 200,
            description = "The caller's notification preference (`null` when never set).",
            body = crate::scheduled::NotificationSetting
        ),
        (
            status = 400,
            description = "The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `schedule_config.colour`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients have no exports to be told about (`forbidden`).",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 422,
            description = "The email is not an address (`invalid`, field `email`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
/// Opts in (or out) of an email when one of the caller's exports completes or fails. The email
/// carries a link, never patient data.
pub async fn set_notifications(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    let input: NotificationInput = parse_json(&body(&state, payload).await?)?;
    let scheduler = scheduler(&state)?;
    let preference = call(&req, move || {
        scheduler.set_notifications(
            &caller.0,
            input.email.trim(),
            input.on_completed,
            input.on_failed,
            Utc::now(),
        )
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &NotificationSetting {
            notifications: Some(preference),
        },
    ))
}
