//! The application: shared state, the routes, and the middleware every request passes (request
//! id, per-IP rate limit, metrics, access log, JSON error bodies).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use export_core::engine::{ExportEngine, RequestOrigin};
use export_core::worker::PoolWaker;

use crate::auth::TokenVerifier;
use crate::client::{IpLimiter, TrustedProxies};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::{routes, scheduled, templates};

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<ExportEngine>,
    pub tokens: TokenVerifier,
    pub metrics: Arc<Metrics>,
    pub ip_limiter: IpLimiter,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub proxies: TrustedProxies,
    pub exports_per_hour: u32,
    pub link_minutes: i64,
    pub max_body_bytes: usize,
    /// Wakes this process's workers when a job is submitted; `None` in an API-only process.
    pub waker: Option<PoolWaker>,
    /// Scheduled reports.
    pub scheduler: Option<Arc<export_schedule::scheduler::Scheduler>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The request id of a request: the client's `X-Request-Id` when it is a short token, else a
/// fresh one. It is on the response and on every log line about the request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The request id a handler sees.
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "-".to_owned())
}

/// The client's address, as the middleware worked it out (see [`TrustedProxies::client`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Where a request came from, for the audit trail: the client's address (through trusted
/// proxies), its user agent and the request id.
pub fn origin(req: &HttpRequest) -> RequestOrigin {
    let client = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0)
        .or_else(|| req.peer_addr().map(|a| a.ip()));
    RequestOrigin {
        ip_address: client.map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_id: Some(request_id(req)),
    }
}

/// Request id, per-IP limit, timing, metrics and the access log around every request.
pub async fn observe(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let peer = req.peer_addr().map(|a| a.ip());
    let client = match &state {
        Some(state) => state
            .proxies
            .client(peer, req.headers().get_all("x-forwarded-for")),
        None => peer,
    };
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientIp(ip));
    }
    let limited = match (&state, client) {
        (Some(state), Some(ip)) => state.ip_limiter.check(ip),
        _ => None,
    };
    let method = req.method().to_string();
    let mut response = match limited {
        Some(wait) => {
            let error = ApiError::too_many("too many requests from this address", wait);
            req.into_response(error.error_response())
                .map_into_left_body()
        }
        None => next.call(req).await?.map_into_right_body(),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(state) = state {
        state.metrics.request(&method, &route, status, seconds);
    }
    log::info!(
        "request {id} {method} {route} {status} {:.1}ms",
        seconds * 1000.0
    );
    Ok(response)
}

/// Turns actix's own error responses (unknown route, wrong method, bad path or query) into the
/// API's JSON error body.
pub fn json_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let (code, message) = match status.as_u16() {
            404 => ("not_found", "there is no such resource".to_owned()),
            405 => (
                "method_not_allowed",
                "this resource does not take this method".to_owned(),
            ),
            413 => (
                "payload_too_large",
                "the request body is too large".to_owned(),
            ),
            s if s < 500 => (
                "bad_request",
                status
                    .canonical_reason()
                    .unwrap_or("bad request")
                    .to_lowercase(),
            ),
            _ => (
                "internal",
                "the server could not complete the request".to_owned(),
            ),
        };
        let mut error = ApiError::new(status, code, message);
        if status.as_u16() == 400 {
            error.message = "the request's path or query is not valid".to_owned();
        }
        let (req, _) = res.into_parts();
        let res = ServiceResponse::new(req, error.error_response()).map_into_right_body();
        Ok(ErrorHandlerResponse::Response(res))
    })
}

/// Declares the routes once: `API_ROUTES` (what the OpenAPI test compares the document with) and
/// their registration.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// Every route the API serves, as (method, path).
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];

        fn register(config: &mut web::ServiceConfig) {
            // One resource per path with all its methods, so a wrong method is a 405.
            let mut resources: Vec<(&'static str, Option<actix_web::Resource>)> = Vec::new();
            $(add_route(&mut resources, $path, web::$method().to($handler));)*
            for (_, resource) in resources {
                if let Some(resource) = resource {
                    config.service(resource.default_service(web::to(method_not_allowed)));
                }
            }
        }
    };
}

api_routes! {
    get "/healthz" => routes::healthz,
    get "/readyz" => routes::readyz,
    get "/metrics" => routes::metrics,
    get "/api/v1/openapi.json" => routes::openapi,
    post "/api/v1/export/session-notes" => routes::session_notes,
    post "/api/v1/export/progress-report" => routes::progress_report,
    post "/api/v1/export/treatment-summary" => routes::treatment_summary,
    post "/api/v1/export/full-record" => routes::full_record,
    get "/api/v1/export/datasets" => routes::list_datasets,
    post "/api/v1/export/datasets/{name}" => routes::dataset,
    get "/api/v1/export/jobs" => routes::list_jobs,
    get "/api/v1/export/jobs/{id}" => routes::get_job,
    delete "/api/v1/export/jobs/{id}" => routes::delete_job,
    post "/api/v1/export/jobs/{id}/link" => routes::issue_link,
    get "/api/v1/export/download/{id}" => routes::download,
    get "/api/v1/export/templates" => templates::list,
    post "/api/v1/export/templates" => templates::create,
    get "/api/v1/export/templates/{id}" => templates::get,
    put "/api/v1/export/templates/{id}" => templates::update,
    delete "/api/v1/export/templates/{id}" => templates::delete,
    post "/api/v1/export/templates/{id}/preview" => templates::preview,
    post "/api/v1/export/scheduled" => scheduled::create,
    get "/api/v1/export/scheduled" => scheduled::list,
    post "/api/v1/export/scheduled/preview" => scheduled::preview_unsaved,
    get "/api/v1/export/scheduled/{id}" => scheduled::get,
    patch "/api/v1/export/scheduled/{id}" => scheduled::update,
    delete "/api/v1/export/scheduled/{id}" => scheduled::delete,
    post "/api/v1/export/scheduled/{id}/run" => scheduled::run,
    get "/api/v1/export/scheduled/{id}/preview" => scheduled::preview,
    get "/api/v1/export/notifications" => scheduled::get_notifications,
    put "/api/v1/export/notifications" => scheduled::set_notifications,
    get "/api/v1/export/stats" => routes::stats,
    get "/api/v1/audit/logs" => routes::audit_logs,
    get "/api/v1/audit/logs/export" => routes::audit_export,
}

fn add_route(
    resources: &mut Vec<(&'static str, Option<actix_web::Resource>)>,
    path: &'static str,
    route: actix_web::Route,
) {
    match resources.iter_mut().find(|(p, _)| *p == path) {
        Some((_, slot)) => *slot = slot.take().map(|resource| resource.route(route)),
        None => resources.push((path, Some(web::resource(path).route(route)))),
    }
}

/// A known path asked with a method it does not take: 405 with the methods it does take.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let pattern = req.match_pattern().unwrap_or_default();
    let allowed: Vec<String> = API_ROUTES
        .iter()
        .filter(|(_, path)| *path == pattern)
        .map(|(method, _)| method.to_ascii_uppercase())
        .collect();
    let mut response = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this resource takes {}", allowed.join(", ")),
    )
    .error_response();
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The API's routes, with JSON errors for bad paths and queries and for unknown routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("the path is not valid: {err}")).into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("the query is not valid: {err}")).into()
        }));
    register(config);
    config.default_service(web::to(|| async {
        ApiError::not_found("there is no such resource").error_response()
    }));
}

/// The response to a request whose handler failed inside `web::block`.
pub fn blocking_failed(req: &HttpRequest) -> ApiError {
    ApiError::internal(&request_id(req), "a blocking task was cancelled")
}

/// `HttpResponse` with the JSON of `value`.
pub fn json<T: serde::Serialize>(status: actix_web::http::StatusCode, value: &T) -> HttpResponse {
    HttpResponse::build(status).json(value)
}
