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
#[derive(Debug, Serialize)]
struct ReportView {
    #[serde(flatten)]
    report: ScheduledReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    recent_runs: Option<Vec<export_domain::ScheduleRun>>,
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

pub async fn list(req: HttpRequest, state: Data, caller: Caller) -> Answer {
    let scheduler = scheduler(&state)?;
    let reports = call(&req, move || scheduler.list(&caller.0)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "scheduled_reports": reports }),
    ))
}

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
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "next_runs": runs }),
    ))
}

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
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "next_runs": runs }),
    ))
}

/// The body of PUT /notifications.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationInput {
    email: String,
    #[serde(default)]
    on_completed: bool,
    #[serde(default)]
    on_failed: bool,
}

/// The caller's notification preference (`null` when never set).
pub async fn get_notifications(req: HttpRequest, state: Data, caller: Caller) -> Answer {
    let scheduler = scheduler(&state)?;
    let preference = call(&req, move || scheduler.notifications(&caller.0)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "notifications": preference }),
    ))
}

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
        &serde_json::json!({ "notifications": preference }),
    ))
}
