//! The handlers. Each parses and checks its input (naming the field of any problem), asks the
//! engine on the blocking pool, and shapes the answer; authorization is the engine's.

use std::collections::BTreeMap;
use std::io::Read;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use export_core::dataset::{FilterKind, check_filters};
use export_core::engine::ExportRequest;
use export_core::queries::{AuditQuery, JobQuery};
use export_domain::{
    AuditEntry, DatasetInput, ExportFormat, ExportJob, FullRecordInput, JobStatus,
    ProgressReportInput, SessionNotesInput, TreatmentSummaryInput, ValidationErrors,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, parse_json};
use crate::http::{blocking_failed, body, engine_call, json, origin, parse_id, request_id};
use crate::query::{Bounded, Id, Query, Whole, Word, value};
use crate::state::AppState;

type Data = web::Data<AppState>;
type Answer = Result<HttpResponse, ApiError>;

/// An export job as clients see it (the seed platform's `ExportJobResponse`, with more).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    #[schema(value_type = export_domain::ExportType)]
    pub export_type: String,
    #[schema(value_type = ExportFormat)]
    pub format: String,
    pub status: JobStatus,
    #[schema(minimum = 0, maximum = 100)]
    pub progress_percent: i32,
    /// The patient the export is about; null for a dataset export not narrowed to one patient.
    pub patient_id: Option<Uuid>,
    pub template_id: Option<Uuid>,
    #[schema(minimum = 0)]
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When the file is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    pub file_size_bytes: Option<i64>,
    /// Hex SHA-256 of the file.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: Option<String>,
    pub row_count: Option<i64>,
    /// `/api/v1/export/download/{id}` once completed.
    pub download_url: Option<String>,
    /// Why the job failed, in words a user can act on; no patient data.
    pub error_message: Option<String>,
}

/// A page of the caller's jobs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// The answer of `/readyz` when the database answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
}

impl JobView {
    pub fn of(job: ExportJob) -> JobView {
        let completed = job.status == JobStatus::Completed;
        JobView {
            download_url: completed.then(|| format!("/api/v1/export/download/{}", job.id)),
            id: job.id,
            export_type: job.export_type.to_string(),
            format: job.format.to_string(),
            status: job.status,
            progress_percent: job.progress_percent,
            patient_id: job.patient_id,
            template_id: job.template_id,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            expires_at: job.expires_at,
            file_size_bytes: job.file_size_bytes,
            sha256: job.sha256,
            row_count: job.row_count,
            error_message: job.error_message,
        }
    }
}

fn job_location(id: Uuid) -> String {
    format!("/api/v1/export/jobs/{id}")
}

/// The `Idempotency-Key` header: up to 255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
                .with_field("Idempotency-Key")
        })?;
    Ok(Some(text.to_owned()))
}

/// Submits a checked request: the idempotent replay, the engine (which holds the per-user limit
/// in the submit's own transaction), a wake-up for the workers, and the `202 Accepted` of the
/// async pattern.
async fn submit(req: HttpRequest, state: Data, caller: Caller, request: ExportRequest) -> Answer {
    let actor = caller.0;
    // The engine answers a replay with the same job, and a different request under the same
    // key with a conflict, also when two such requests race.
    let key = idempotency_key(&req)?;
    let now = Utc::now();
    let engine = state.engine.clone();
    let origin = origin(&req);
    let per_hour = Some(state.exports_per_hour);
    let job = engine_call(&req, move || {
        engine.submit_within(&actor, request, key.as_deref(), per_hour, &origin, now)
    })
    .await?;
    if let Some(waker) = &state.waker {
        waker.wake();
    }
    Ok(accepted(job))
}

fn accepted(job: ExportJob) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header((header::CONTENT_LOCATION, job_location(job.id)))
        .json(JobView::of(job))
}

fn checked<T>(result: Result<T, ValidationErrors>) -> Result<T, ApiError> {
    result.map_err(|errors| ApiError::from_validation(&errors))
}

/// Reads a request body of type `I`, checks it into an export request with `check`, submits it.
async fn submit_body<I: serde::de::DeserializeOwned>(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
    check: impl FnOnce(I) -> Result<ExportRequest, ValidationErrors>,
) -> Answer {
    let input: I = parse_json(&body(&state, payload).await?)?;
    let request = checked(check(input))?;
    submit(req, state, caller, request).await
}

#[utoipa::path(
    post,
    path = "/api/v1/export/session-notes",
    operation_id = "exportSessionNotes",
    tag = "exports",
    summary = "Export session notes",
    description = "Queues an export of the notes of one or more processed sessions of one patient (pdf, docx, json, csv or xlsx). The transcript is left out unless `options.include_transcript` is true. With `note_layout`, the notes are filled into a clinical note layout (SOAP, DAP, BIRP or a progress note). Therapists only.",
    params(
        crate::openapi::Idempotency,
    ),
    request_body(content = export_domain::SessionNotesInput, description = "What to export."),
    responses(
        crate::openapi::Submitted,
        crate::openapi::ClinicalRefusals,
    )
)]
pub async fn session_notes(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    submit_body(req, state, caller, payload, |input: SessionNotesInput| {
        input.validate().map(ExportRequest::SessionNotes)
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/export/progress-report",
    operation_id = "exportProgressReport",
    tag = "exports",
    summary = "Export a progress report",
    description = "Queues a progress report of one patient over an inclusive date range (pdf, docx or json). Every section is included unless turned off in `include_sections`. Therapists only.",
    params(
        crate::openapi::Idempotency,
    ),
    request_body(content = export_domain::ProgressReportInput, description = "What to export."),
    responses(
        crate::openapi::Submitted,
        crate::openapi::ClinicalRefusals,
    )
)]
pub async fn progress_report(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    submit_body(req, state, caller, payload, |input: ProgressReportInput| {
        input.validate().map(ExportRequest::ProgressReport)
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/export/treatment-summary",
    operation_id = "exportTreatmentSummary",
    tag = "exports",
    summary = "Export a treatment summary",
    description = "Queues a treatment summary of one patient written for a purpose (insurance, transfer, records) (pdf, docx or json). Therapists only.",
    params(
        crate::openapi::Idempotency,
    ),
    request_body(content = export_domain::TreatmentSummaryInput, description = "What to export."),
    responses(
        crate::openapi::Submitted,
        crate::openapi::ClinicalRefusals,
    )
)]
pub async fn treatment_summary(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    submit_body(
        req,
        state,
        caller,
        payload,
        |input: TreatmentSummaryInput| input.validate().map(ExportRequest::TreatmentSummary),
    )
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/export/full-record",
    operation_id = "exportFullRecord",
    tag = "exports",
    summary = "Export a full record",
    description = "Queues an export of everything about one patient, optionally limited to a date range (json or pdf). Therapists only.",
    params(
        crate::openapi::Idempotency,
    ),
    request_body(content = export_domain::FullRecordInput, description = "What to export."),
    responses(
        crate::openapi::Submitted,
        crate::openapi::ClinicalRefusals,
    )
)]
pub async fn full_record(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    submit_body(req, state, caller, payload, |input: FullRecordInput| {
        input.validate().map(ExportRequest::FullRecord)
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/export/datasets/{name}",
    operation_id = "exportDataset",
    tag = "exports",
    summary = "Export a dataset",
    description = "Queues a tabular export of the dataset `name` (csv, json, xlsx or pdf), filtered as the dataset allows (see `GET /api/v1/export/datasets`). Therapist datasets hold only the rows of the patients the caller actively cares for; admin datasets are for administrators.",
    params(
        ("name" = String, Path, pattern = "^[a-z0-9_]{1,64}$", description = "The dataset: `sessions`, `goals`, `audit` or one an embedding service added. A name that is not 1 to 64 characters of a-z, 0-9 and _ is refused with 422, one that names no dataset with 404 (both `field: dataset`)."),
        crate::openapi::Idempotency,
    ),
    request_body(content = export_domain::DatasetInput, description = "The format and the filters."),
    responses(
        crate::openapi::Submitted,
        (
            status = 403,
            description = "The caller's role may not export this dataset (therapist datasets are for therapists, admin datasets for administrators). The refusal is audited",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No dataset has this name (`not_found`, `field: dataset`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The body is well-formed but not valid: a format datasets do not take, a dataset name that is not 1 to 64 characters of a-z, 0-9 and _ (`field: dataset`), a filter the dataset does not have or a filter value of the wrong kind (`field: filters.<name>`), or an `Idempotency-Key` already used for a different request. Every problem is listed in `errors`",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn dataset(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    name: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    submit_body(req, state, caller, payload, |input: DatasetInput| {
        input.validate(&name).map(ExportRequest::Dataset)
    })
    .await
}

/// A filter a dataset takes.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DatasetFilter)]
struct FilterView {
    name: &'static str,
    #[schema(value_type = String, pattern = "^(uuid|date|choice|text)$")]
    kind: &'static str,
    /// The allowed values; only for `choice` filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    choices: Option<&'static [&'static str]>,
    description: &'static str,
}

/// A dataset the caller may export.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Dataset)]
struct DatasetView {
    #[schema(pattern = "^[a-z0-9_]{1,64}$")]
    name: String,
    description: String,
    #[schema(value_type = String, pattern = "^(therapists|admins)$")]
    audience: &'static str,
    columns: Vec<String>,
    filters: Vec<FilterView>,
}

/// The datasets the caller may export.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetList {
    datasets: Vec<DatasetView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/export/datasets",
    operation_id = "listDatasets",
    tag = "exports",
    summary = "List the datasets",
    description = "The datasets a tabular export can be made of, with their columns and filters. The built-in ones are `sessions` and `goals` (therapists: rows of the patients they actively care for) and `audit` (administrators: the export audit trail); an embedding service may add others.",
    responses(
        (
            status = 200,
            description = "The datasets, by name.",
            body = crate::routes::DatasetList
        ),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 429, response = crate::openapi::RateLimited),
    )
)]
pub async fn list_datasets(state: Data, _caller: Caller) -> Answer {
    let views: Vec<DatasetView> = state
        .engine
        .datasets()
        .iter()
        .map(|d| DatasetView {
            name: d.name().to_owned(),
            description: d.description().to_owned(),
            audience: match d.audience() {
                export_core::dataset::Audience::Therapists => "therapists",
                export_core::dataset::Audience::Admins => "admins",
            },
            columns: d.columns().into_iter().map(|c| c.name).collect(),
            filters: d
                .filters()
                .iter()
                .map(|f| FilterView {
                    name: f.name,
                    kind: match f.kind {
                        FilterKind::Uuid => "uuid",
                        FilterKind::Date => "date",
                        FilterKind::Choice(_) => "choice",
                        FilterKind::Text(_) => "text",
                    },
                    choices: match f.kind {
                        FilterKind::Choice(words) => Some(words),
                        _ => None,
                    },
                    description: f.description,
                })
                .collect(),
        })
        .collect();
    Ok(json(StatusCode::OK, &DatasetList { datasets: views }))
}

/// `?status=&patient_id=&limit=&cursor=` of the job list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    status: Option<Word<JobStatus>>,
    patient_id: Option<Id>,
    limit: Option<Bounded<1, 1000>>,
    cursor: Option<String>,
}

fn job_query(query: &JobListQuery) -> Result<JobQuery, ApiError> {
    Ok(JobQuery {
        status: query.status.map(|Word(status)| status),
        patient_id: query.patient_id.map(|Id(id)| id),
        limit: query.limit.map_or(100, |Bounded(n)| n),
        before: query.cursor.as_deref().map(parse_cursor).transpose()?,
    })
}

/// The cursor after a job: its creation time in microseconds and its id.
fn cursor_of(job: &ExportJob) -> String {
    format!("{}_{}", job.created_at.timestamp_micros(), job.id.simple())
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || {
        ApiError::bad_request("cursor must be the next_cursor of a previous page")
            .with_field("cursor")
    };
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    if micros.trim_start_matches('-').len() > 18 || id.len() != 32 {
        return Err(bad());
    }
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    // A cursor is a position: one outside the years both databases hold (never issued) is the
    // position at the nearer end, before every job or after every job.
    let (first, last) = (
        DateTime::from_timestamp(0, 0).expect("the epoch"),
        DateTime::from_timestamp(253_402_300_799, 0).expect("9999-12-31T23:59:59Z"),
    );
    Ok((
        at.clamp(first, last),
        Uuid::try_parse(id).map_err(|_| bad())?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/export/jobs",
    operation_id = "listJobs",
    tag = "jobs",
    summary = "List the caller's export jobs",
    description = "The caller's jobs, newest first, a page at a time. When a page is full, `next_cursor` is set: pass it as `cursor` for the next page (the last page may then be empty).",
    params(
        ("status" = Option<JobStatus>, Query, description = "Only jobs in this state."),
        ("patient_id" = Option<Uuid>, Query, description = "Only jobs about this patient."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "The most jobs on a page."),
        ("cursor" = Option<String>, Query, pattern = "^-?[0-9]{1,18}_[0-9a-f]{32}$", description = "The `next_cursor` of the previous page."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "A page of jobs.",
            body = crate::routes::JobList
        ),
        (
            status = 400,
            description = "A query parameter is unknown or its value is not valid (`field` names it)",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn list_jobs(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    Query(query): Query<JobListQuery>,
) -> Answer {
    let page = job_query(&query)?;
    let limit = page.limit as usize;
    let engine = state.engine.clone();
    let jobs = engine_call(&req, move || engine.jobs_page(&caller.0, &page)).await?;
    let next_cursor = (jobs.len() == limit)
        .then(|| jobs.last().map(cursor_of))
        .flatten();
    let jobs: Vec<JobView> = jobs.into_iter().map(JobView::of).collect();
    Ok(json(StatusCode::OK, &JobList { jobs, next_cursor }))
}

#[utoipa::path(
    get,
    path = "/api/v1/export/jobs/{id}",
    operation_id = "getJob",
    tag = "jobs",
    summary = "Poll an export job",
    description = "The job's state. While it is `pending` or `processing` the answer carries `Retry-After: 2`; once `completed`, `download_url` is set. Another user's job is answered as if it did not exist.",
    params(
        ("id" = Uuid, Path, description = "The job's id."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The job.",
            body = crate::routes::JobView,
            headers(("Retry-After" = u32, description = "Seconds to wait before polling again; sent while the job is pending or processing."))
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "The caller has no such job.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn get_job(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    let job = engine_call(&req, move || engine.job(&caller.0, id)).await?;
    let mut response = HttpResponse::Ok();
    if !job.status.is_terminal() {
        response.insert_header((header::RETRY_AFTER, "2"));
    }
    Ok(response.json(JobView::of(job)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/export/jobs/{id}",
    operation_id = "deleteJob",
    tag = "jobs",
    summary = "Cancel or delete an export job",
    description = "A `pending` or `processing` job is cancelled: 200 with the job, which stays listed as `cancelled` and keeps no file. A finished job is deleted with its file: 204. Audited (`cancelled` or `deleted`); the audit entries outlive the job.",
    params(
        ("id" = Uuid, Path, description = "The job's id."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The cancelled job.",
            body = crate::routes::JobView
        ),
        (
            status = 204,
            description = "The job and its file were deleted."
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "The caller has no such job.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn delete_job(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    let origin = origin(&req);
    let job = engine_call(&req, move || {
        engine.cancel_or_delete(&caller.0, id, &origin, Utc::now())
    })
    .await?;
    Ok(if job.status == JobStatus::Cancelled {
        // Cancelled: the job stays, to be read or deleted later.
        json(StatusCode::OK, &JobView::of(job))
    } else {
        // Deleted, with its file.
        HttpResponse::NoContent().finish()
    })
}

/// A signed link's lifetime. Unknown fields are refused (400 `invalid_field`).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// The link's lifetime in minutes; the server's default (15) when absent.
    #[serde(default, deserialize_with = "export_domain::optional_whole_number")]
    #[schema(minimum = 1, maximum = 1440)]
    minutes: Option<i64>,
}

/// A signed download link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    /// `/api/v1/export/download/{id}?token=…`, relative to the server.
    url: String,
    expires_at: DateTime<Utc>,
}

#[utoipa::path(
    post,
    path = "/api/v1/export/jobs/{id}/link",
    operation_id = "createDownloadLink",
    tag = "jobs",
    summary = "Issue a signed download link",
    description = "A link to a completed job's file that works without a bearer token until it expires (default 15 minutes, at most 1440). Using it checks again that the link's user is still a therapist caring for the job's patient, so links to exports that name no patient (dataset exports) are refused when used. Audited (`shared`).",
    params(
        ("id" = Uuid, Path, description = "The job's id."),
    ),
    request_body(content = Option<crate::routes::LinkInput>, description = "The link's lifetime; the body may be empty."),
    responses(
        crate::openapi::Guarded,
        (
            status = 201,
            description = "The link.",
            body = crate::routes::LinkView
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`); or The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `options.x`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "This server does not sign links.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "The caller has no such job.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 409,
            description = "The job is not `completed` yet, or it failed (`not_ready`).",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 410,
            description = "The job was cancelled, or it expired and its file was deleted (`gone`).",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 422,
            description = "`minutes` is not from 1 to 1440 (`field: minutes`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn issue_link(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let body = body(&state, payload).await?;
    // No body, or JSON `null`, asks for the defaults.
    let input: LinkInput = if body.is_empty() || serde_json::from_slice::<()>(&body).is_ok() {
        LinkInput::default()
    } else {
        parse_json(&body)?
    };
    let minutes = input.minutes.unwrap_or(state.link_minutes);
    if !(1..=24 * 60).contains(&minutes) {
        return Err(ApiError::invalid("minutes", "must be from 1 to 1440"));
    }
    let engine = state.engine.clone();
    let origin = origin(&req);
    let now = Utc::now();
    let token = engine_call(&req, move || {
        engine.issue_link(&caller.0, id, Duration::minutes(minutes), &origin, now)
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &LinkView {
            url: format!("/api/v1/export/download/{id}?token={token}"),
            expires_at: now + Duration::minutes(minutes),
        },
    ))
}

/// The Content-Type of a download: the format's media type, with the charset of text.
fn content_type(format: ExportFormat) -> String {
    match format {
        ExportFormat::Csv => format!("{}; charset=utf-8", format.media_type()),
        other => other.media_type().to_owned(),
    }
}

/// `export_<type>_<id>.<format>`: made of vocabulary words and a UUID, so it is safe as it is
/// (RFC 6266 `filename=` with ASCII only).
fn file_name(job: &ExportJob) -> String {
    format!("export_{}_{}.{}", job.export_type, job.id, job.format)
}

#[utoipa::path(
    get,
    path = "/api/v1/export/download/{id}",
    operation_id = "downloadExport",
    tag = "jobs",
    summary = "Download an export's file",
    description = "Streams the file of a completed job: with the owner's bearer token, or with the `token` of a signed link (see `POST /api/v1/export/jobs/{id}/link`), in which case no bearer token is needed and any `Authorization` header is ignored. Every download is audited (`downloaded`), refusals too. The file is PHI: it is sent with `Cache-Control: no-store`.",
    params(
        ("id" = Uuid, Path, description = "The job's id."),
    ),
    security(("bearerAuth" = []), ("signedLink" = [])),
    responses(
        (
            status = 200,
            description = "The file, `export_<type>_<id>.<format>`, in the job's format. `ETag` is the quoted SHA-256 of the file.",
            content(("application/pdf"), ("application/vnd.openxmlformats-officedocument.wordprocessingml.document"), ("text/csv"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("application/json")),
            headers(("Content-Disposition" = String, description = r#"`attachment; filename="…"`."#), ("X-Export-Job-ID" = String, description = "The id of the job the file belongs to."), ("ETag" = String, description = "The quoted hex SHA-256 of the file, when known."), ("Cache-Control" = String, description = "`no-store`: the content is not to be cached."))
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 401,
            description = "Neither a bearer token nor a link `token` was sent, or the bearer token is not valid (`unauthorized`).",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "The link is malformed, its signature is not valid, it has expired, it is for another export, its user may no longer download the export, or this server does not sign links.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "The caller has no such job.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 409,
            description = "The job is not `completed`: still pending or processing, or failed (`not_ready`).",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 410,
            description = "The job was cancelled, or it expired and its file was deleted (`gone`).",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::DatabaseUnavailable),
    )
)]
pub async fn download(
    req: HttpRequest,
    state: Data,
    id: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    let origin = origin(&req);
    let now = Utc::now();
    let (job, reader) = match query.get("token") {
        Some(token) => {
            let token = token.clone();
            engine_call(&req, move || {
                engine.download_link_for(id, &token, &origin, now)
            })
            .await?
        }
        None => {
            let caller = crate::auth::Caller::extract(&req).await?;
            engine_call(&req, move || engine.download(&caller.0, id, &origin, now)).await?
        }
    };
    let stream = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let read = web::block(move || {
            let mut chunk = vec![0u8; 256 * 1024];
            let mut filled = 0;
            while filled < chunk.len() {
                match reader.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
            chunk.truncate(filled);
            Ok((chunk, reader))
        })
        .await;
        match read {
            Ok(Ok((chunk, _))) if chunk.is_empty() => None,
            Ok(Ok((chunk, reader))) => Some((Ok(web::Bytes::from(chunk)), Some(reader))),
            Ok(Err(err)) => {
                log::error!("reading a stored file failed: {err}");
                Some((Err(err), None))
            }
            Err(_) => Some((Err(std::io::Error::other("the read was cancelled")), None)),
        }
    });
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, content_type(job.format)))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file_name(&job)),
        ))
        .insert_header(("X-Export-Job-ID", job.id.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(digest) = &job.sha256
        && let Ok(value) = HeaderValue::from_str(&format!("\"{digest}\""))
    {
        response.insert_header((header::ETAG, value));
    }
    match job.file_size_bytes {
        Some(size) => Ok(response.no_chunking(size as u64).streaming(stream)),
        None => Ok(response.streaming(stream)),
    }
}

/// Statistics of the jobs created since `since`, and (`scheduled`, from a process with a
/// scheduler) of the scheduled runs due since then.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Statistics {
    #[serde(flatten)]
    stats: export_core::metrics::ExportStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled: Option<export_schedule::scheduler::RunStats>,
}

/// `?days=` of the statistics: 1 to 366, default 7.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    days: Option<Bounded<1, 366>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/export/stats",
    operation_id = "getExportStats",
    tag = "jobs",
    summary = "Export statistics",
    description = "Statistics of the jobs created in the last `days` days: everyone's for an administrator, the caller's own for a therapist. A process with a scheduler adds `scheduled`, the scheduled runs due in the window (a therapist's: those of their own scheduled reports).",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 366, description = "The window, in days before now."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The statistics.",
            body = crate::routes::Statistics
        ),
        (
            status = 400,
            description = "A query parameter is unknown or its value is not valid (`field` names it)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients have no export statistics.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn stats(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    Query(query): Query<StatsQuery>,
) -> Answer {
    let days = query.days.map_or(7, |Bounded(days)| days);
    let engine = state.engine.clone();
    let now = Utc::now();
    let stats = engine_call(&req, move || {
        engine.stats(&caller.0, now, Duration::days(days))
    })
    .await?;
    let scheduled = match state.scheduler.clone() {
        None => None,
        Some(scheduler) => {
            match web::block(move || scheduler.run_stats(&caller.0, now - Duration::days(days)))
                .await
            {
                Ok(Ok(runs)) => Some(runs),
                Ok(Err(err)) => return Err(ApiError::from_schedule(err, &request_id(&req))),
                Err(_) => return Err(blocking_failed(&req)),
            }
        }
    };
    Ok(json(StatusCode::OK, &Statistics { stats, scheduled }))
}

/// The audit filters of a query: the audit dataset's filters, plus `after` and `limit`.
fn audit_filters(
    state: &AppState,
    query: &BTreeMap<String, String>,
) -> Result<(export_core::dataset::Filters, Option<i64>, Option<i64>), ApiError> {
    // The audit dataset's filters are open-ended (the dataset declares them; checked below);
    // `after` and `limit` are the page's, typed like every query parameter.
    let mut raw = BTreeMap::new();
    let (mut after, mut limit) = (None, None);
    for (name, text) in query {
        match name.as_str() {
            "after" => after = Some(value::<Whole>(name, text)?.0),
            "limit" => limit = Some(value::<Bounded<1, 1000>>(name, text)?.0),
            _ => {
                raw.insert(name.clone(), serde_json::Value::from(text.as_str()));
            }
        }
    }
    let dataset = state
        .engine
        .datasets()
        .get("audit")
        .ok_or_else(|| ApiError::not_found("the audit dataset is not available"))?;
    let filters = check_filters(dataset.as_ref(), &raw).map_err(|errors| {
        let mut error = ApiError::from_validation(&ValidationErrors { errors });
        // Query parameters are named without the `filters.` of a dataset request body.
        error.field = error
            .field
            .map(|f| f.trim_start_matches("filters.").to_owned());
        for problem in &mut error.errors {
            problem.field = problem.field.trim_start_matches("filters.").to_owned();
        }
        error.message = error.message.replace("filters.", "");
        error.status = StatusCode::BAD_REQUEST;
        error
    })?;
    Ok((filters, after, limit))
}

/// A page of the audit trail, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// The `after` of the next page; null on the last.
    next_after: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/logs",
    operation_id = "listAuditEntries",
    tag = "audit",
    summary = "Read the audit trail",
    description = "Audit entries in chain order (by `sequence`), a page at a time, filtered by the database before the page is cut; each carries its hash and the previous entry's, so the chain can be verified. When a page is full, `next_after` is set: pass it as `after` for the next page. Administrators only.",
    params(
        ("action" = Option<export_domain::AuditAction>, Query, description = "Only entries of this action."),
        ("user_id" = Option<Uuid>, Query, description = "Only entries of this user (the actor)."),
        ("patient_id" = Option<Uuid>, Query, description = "Only entries about this patient."),
        ("export_job_id" = Option<Uuid>, Query, description = "Only entries of this job."),
        ("from" = Option<chrono::NaiveDate>, Query, description = "Only entries on or after this day (UTC)."),
        ("to" = Option<chrono::NaiveDate>, Query, description = "Only entries on or before this day (UTC); not before `from`."),
        ("after" = Option<i64>, Query, description = "Only entries after this `sequence` (the `next_after` of the previous page)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "The most entries on a page."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "A page of entries.",
            body = crate::routes::AuditPage
        ),
        (
            status = 400,
            description = "A query parameter is unknown or its value is not valid (`field` names it)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Only administrators read the audit trail.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn audit_logs(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    query: web::Query<BTreeMap<String, String>>,
) -> Answer {
    let (filters, after, limit) = audit_filters(&state, &query)?;
    let limit = limit.unwrap_or(100);
    let audit_query = AuditQuery {
        export_job_id: filters.uuid("export_job_id"),
        user_id: filters.uuid("user_id"),
        patient_id: filters.uuid("patient_id"),
        action: filters.text("action").and_then(|a| a.parse().ok()),
        after_sequence: after,
        from: filters.date("from"),
        to: filters.date("to"),
        limit: Some(limit),
    };
    let engine = state.engine.clone();
    let entries: Vec<AuditEntry> =
        engine_call(&req, move || engine.audit_entries(&caller.0, &audit_query)).await?;
    let next_after = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.sequence))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &AuditPage {
            entries,
            next_after,
        },
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/logs/export",
    operation_id = "exportAuditLog",
    tag = "audit",
    summary = "Download the audit trail as CSV",
    description = "Every audit entry matching the filters, in chain order, as CSV (the columns of the `audit` dataset), answered directly rather than as a job. Administrators only.",
    params(
        ("action" = Option<export_domain::AuditAction>, Query, description = "Only entries of this action."),
        ("user_id" = Option<Uuid>, Query, description = "Only entries of this user (the actor)."),
        ("patient_id" = Option<Uuid>, Query, description = "Only entries about this patient."),
        ("export_job_id" = Option<Uuid>, Query, description = "Only entries of this job."),
        ("from" = Option<chrono::NaiveDate>, Query, description = "Only entries on or after this day (UTC)."),
        ("to" = Option<chrono::NaiveDate>, Query, description = "Only entries on or before this day (UTC); not before `from`."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The CSV file, `audit_log_<YYYYMMDD>.csv`.",
            content((String = "text/csv")),
            headers(("Content-Disposition" = String, description = r#"`attachment; filename="…"`."#), ("Cache-Control" = String, description = "`no-store`: the content is not to be cached."))
        ),
        (
            status = 400,
            description = "A query parameter is unknown or its value is not valid (`field` names it)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Only administrators read the audit trail.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn audit_export(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    query: web::Query<BTreeMap<String, String>>,
) -> Answer {
    let (filters, _, _) = audit_filters(&state, &query)?;
    let engine = state.engine.clone();
    let origin = origin(&req);
    let now = Utc::now();
    // Authorized and audited by the engine before the first byte; then written a chunk at a
    // time on the blocking pool while the response streams them out.
    let export = engine_call(&req, move || {
        engine.export_audit_trail(&caller.0, &filters, &origin, now)
    })
    .await?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<web::Bytes>(4);
    let id = request_id(&req);
    actix_web::rt::task::spawn_blocking(move || {
        let mut out = ChunkSender {
            sender,
            chunk: Vec::with_capacity(CHUNK),
        };
        let written = export
            .write_csv(&mut out)
            .map_err(|err| err.to_string())
            .and_then(|rows| out.finish().map(|()| rows).map_err(|err| err.to_string()));
        if let Err(err) = written {
            // The client left, or the trail could not be read: the response ends short.
            log::warn!("request {id}: the audit export stopped: {err}");
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"audit_log_{}.csv\"",
                now.format("%Y%m%d")
            ),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

/// Bytes of a streamed export handed to the response at a time.
const CHUNK: usize = 64 * 1024;

/// A writer that hands what it is given to a streamed response in chunks, waiting while the
/// client is slower than the writer; fails once the response is gone.
struct ChunkSender {
    sender: tokio::sync::mpsc::Sender<web::Bytes>,
    chunk: Vec<u8>,
}

impl ChunkSender {
    fn send_chunk(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(web::Bytes::from(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.send_chunk()
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK {
            self.send_chunk()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "getHealth",
    tag = "system",
    summary = "Liveness",
    description = "Answers as long as the process serves requests; it does not touch the database.",
    security(()),
    responses(
        (
            status = 200,
            description = "The process is alive.",
            body = crate::routes::Health
        ),
        (status = 429, response = crate::openapi::RateLimited),
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "getReadiness",
    tag = "system",
    summary = "Readiness",
    description = "Whether the database answers: a load balancer sends traffic only while this is 200.",
    security(()),
    responses(
        (
            status = 200,
            description = "The database answers.",
            body = crate::routes::Ready
        ),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 500, response = crate::openapi::InternalError),
        (
            status = 503,
            description = "The database does not answer (`unavailable`); try again after `Retry-After` seconds.",
            body = crate::error::ErrorBody<'static>,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))
        ),
    )
)]
pub async fn readyz(req: HttpRequest, state: Data) -> Answer {
    let engine = state.engine.clone();
    match web::block(move || engine.check_ready()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Ready { status: "ready" })),
        Ok(Err(err)) => {
            log::warn!("request {}: not ready: {err}", request_id(&req));
            Err(ApiError::unavailable("the database does not answer"))
        }
        Err(_) => Err(blocking_failed(&req)),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "system",
    summary = "Prometheus metrics",
    description = "Request counts and durations by route and status, finished exports, and the job queue by status, in the Prometheus text format (0.0.4). Unauthenticated: keep it off the public network.",
    security(()),
    responses(
        (
            status = 200,
            description = "The metrics, in the OpenMetrics text format.",
            content((String = "application/openmetrics-text"))
        ),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::DatabaseUnavailable),
    )
)]
pub async fn metrics(req: HttpRequest, state: Data) -> Answer {
    let engine = state.engine.clone();
    let counts = engine_call(&req, move || engine.queue_counts()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE))
        .body(state.metrics.render(&counts)))
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "system",
    summary = "This document",
    description = "The OpenAPI 3.0 description of the API.",
    security(()),
    responses(
        (
            status = 200,
            description = "The OpenAPI document.",
            content(("application/json"))
        ),
        (status = 429, response = crate::openapi::RateLimited),
    )
)]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(crate::openapi::document())
}
