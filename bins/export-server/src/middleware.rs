//! The middleware every request passes: request id, client address, per-address limit, metrics,
//! access log; and JSON bodies for actix's own error responses.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpMessage, ResponseError, web};

use crate::error::ApiError;
use crate::http::{ClientIp, REQUEST_ID, RequestId};
use crate::state::AppState;

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
