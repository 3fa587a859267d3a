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

/// A job as clients see it (the seed platform's `ExportJobResponse`, with more).
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub export_type: String,
    pub format: String,
    pub status: JobStatus,
    pub progress_percent: i32,
    pub patient_id: Option<Uuid>,
    pub template_id: Option<Uuid>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub file_size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub row_count: Option<i64>,
    pub download_url: Option<String>,
    pub error_message: Option<String>,
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

#[derive(Serialize)]
struct FilterView {
    name: &'static str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<&'static [&'static str]>,
    description: &'static str,
}

#[derive(Serialize)]
struct DatasetView {
    name: String,
    description: String,
    audience: &'static str,
    columns: Vec<String>,
    filters: Vec<FilterView>,
}

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
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "datasets": views }),
    ))
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
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        // Both databases hold these years; a cursor outside them was never issued.
        .filter(|at| (1970..=9999).contains(&chrono::Datelike::year(at)))
        .ok_or_else(bad)?;
    Ok((at, Uuid::try_parse(id).map_err(|_| bad())?))
}

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
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "jobs": jobs, "next_cursor": next_cursor }),
    ))
}

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

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkInput {
    minutes: Option<i64>,
}

pub async fn issue_link(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let body = body(&state, payload).await?;
    let input: LinkInput = if body.iter().all(u8::is_ascii_whitespace) {
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
        &serde_json::json!({
            "url": format!("/api/v1/export/download/{id}?token={token}"),
            "expires_at": now + Duration::minutes(minutes),
        }),
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

/// `?days=` of the statistics: 1 to 366, default 7.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    days: Option<Bounded<1, 366>>,
}

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
    let mut value =
        serde_json::to_value(&stats).map_err(|e| ApiError::internal(&request_id(&req), e))?;
    if let Some(scheduler) = state.scheduler.clone() {
        let scheduled =
            match web::block(move || scheduler.run_stats(&caller.0, now - Duration::days(days)))
                .await
            {
                Ok(Ok(runs)) => runs,
                Ok(Err(err)) => return Err(ApiError::from_schedule(err, &request_id(&req))),
                Err(_) => return Err(blocking_failed(&req)),
            };
        value["scheduled"] = serde_json::to_value(scheduled)
            .map_err(|e| ApiError::internal(&request_id(&req), e))?;
    }
    Ok(json(StatusCode::OK, &value))
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

#[derive(Serialize)]
struct AuditView {
    sequence: i64,
    #[serde(flatten)]
    entry: export_domain::NewAuditEntry,
    prev_hash: String,
    entry_hash: String,
}

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
    let entries: Vec<AuditView> = entries
        .into_iter()
        .map(|e| AuditView {
            sequence: e.sequence,
            entry: e.entry,
            prev_hash: e.prev_hash,
            entry_hash: e.entry_hash,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "entries": entries, "next_after": next_after }),
    ))
}

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

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(req: HttpRequest, state: Data) -> Answer {
    let engine = state.engine.clone();
    match web::block(move || engine.check_ready()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))),
        Ok(Err(err)) => {
            log::warn!("request {}: not ready: {err}", request_id(&req));
            Err(ApiError::unavailable("the database does not answer"))
        }
        Err(_) => Err(blocking_failed(&req)),
    }
}

pub async fn metrics(req: HttpRequest, state: Data) -> Answer {
    let engine = state.engine.clone();
    let counts = engine_call(&req, move || engine.queue_counts()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE))
        .body(state.metrics.render(&counts)))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(crate::openapi::DOCUMENT)
}
