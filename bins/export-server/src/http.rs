//! The HTTP helpers handlers share: the request id, where a request came from, the blocking pool,
//! the body, ids in paths, JSON answers.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use export_core::engine::{EngineError, RequestOrigin};
use export_schedule::scheduler::ScheduleError;
use futures_util::StreamExt;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The request id of a request: the client's `X-Request-Id` when it is a short token, else a
/// fresh one. It is on the response and on every log line about the request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id a handler sees.
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "-".to_owned())
}

/// The client's address, as the middleware worked it out (see
/// [`crate::client::TrustedProxies::client`]).
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

/// The response to a request whose handler failed inside `web::block`.
pub fn blocking_failed(req: &HttpRequest) -> ApiError {
    ApiError::internal(&request_id(req), "a blocking task was cancelled")
}

/// `HttpResponse` with the JSON of `value`.
pub fn json<T: serde::Serialize>(status: actix_web::http::StatusCode, value: &T) -> HttpResponse {
    HttpResponse::build(status).json(value)
}

/// Runs `work` on the blocking pool; its error becomes a response through `answer`.
async fn on_blocking_pool<T: Send + 'static, E: Send + 'static>(
    req: &HttpRequest,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    answer: fn(E, &str) -> ApiError,
) -> Result<T, ApiError> {
    match web::block(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(answer(err, &request_id(req))),
        Err(_) => Err(blocking_failed(req)),
    }
}

/// Runs `work` on the blocking pool and maps an engine error to its response.
pub async fn engine_call<T: Send + 'static>(
    req: &HttpRequest,
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    on_blocking_pool(req, work, ApiError::from_engine).await
}

/// Runs `work` on the blocking pool and maps a scheduler error to its response.
pub async fn schedule_call<T: Send + 'static>(
    req: &HttpRequest,
    work: impl FnOnce() -> Result<T, ScheduleError> + Send + 'static,
) -> Result<T, ApiError> {
    on_blocking_pool(req, work, ApiError::from_schedule).await
}

/// Reads the body, refusing one larger than the configured limit.
pub async fn body(state: &AppState, mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        if body.len() + chunk.len() > state.max_body_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than {} bytes",
                    state.max_body_bytes
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub fn parse_id(text: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text)
        .map_err(|_| ApiError::bad_request(format!("{field} must be a UUID")).with_field(field))
}
