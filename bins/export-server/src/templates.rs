//! Template routes: list, create, read, replace, delete and preview. The rules (who sees what,
//! system templates read-only, a template source checked before it is saved) are the engine's.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use export_domain::{ExportType, TemplateInput};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, parse_json};
use crate::http::{body, engine_call, json, parse_id};
use crate::query::{Query, Word};
use crate::state::AppState;

type Data = web::Data<AppState>;
type Answer = Result<HttpResponse, ApiError>;

fn location(id: Uuid) -> String {
    format!("/api/v1/export/templates/{id}")
}

async fn input(
    state: &AppState,
    payload: web::Payload,
) -> Result<export_domain::TemplateRequest, ApiError> {
    let input: TemplateInput = parse_json(&body(state, payload).await?)?;
    input
        .validate()
        .map_err(|errors| ApiError::from_validation(&errors))
}

/// `?export_type=` of the template list.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateListQuery {
    export_type: Option<Word<ExportType>>,
}

pub async fn list(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    Query(query): Query<TemplateListQuery>,
) -> Answer {
    let export_type = query.export_type.map(|Word(kind)| kind);
    let engine = state.engine.clone();
    let templates =
        engine_call(&req, move || engine.list_templates(&caller.0, export_type)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "templates": templates }),
    ))
}

pub async fn create(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    payload: web::Payload,
) -> Answer {
    let request = input(&state, payload).await?;
    let engine = state.engine.clone();
    let template = engine_call(&req, move || {
        engine.create_template(&caller.0, request, Utc::now())
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location(template.id)))
        .json(template))
}

pub async fn get(req: HttpRequest, state: Data, caller: Caller, id: web::Path<String>) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    let template = engine_call(&req, move || engine.template(&caller.0, id)).await?;
    Ok(json(StatusCode::OK, &template))
}

pub async fn update(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let request = input(&state, payload).await?;
    let engine = state.engine.clone();
    let template = engine_call(&req, move || {
        engine.update_template(&caller.0, id, request, Utc::now())
    })
    .await?;
    Ok(json(StatusCode::OK, &template))
}

pub async fn delete(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    engine_call(&req, move || engine.delete_template(&caller.0, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn preview(
    req: HttpRequest,
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    let html = engine_call(&req, move || engine.preview_template(&caller.0, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        // The preview shows sample data only, but it is still not for caches.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(html))
}
