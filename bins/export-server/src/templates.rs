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

/// The templates the caller may use.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    templates: Vec<export_domain::ExportTemplate>,
}

#[utoipa::path(
    get,
    path = "/api/v1/export/templates",
    operation_id = "listTemplates",
    tag = "templates",
    summary = "List templates",
    description = "The templates the caller may use: the system templates and their own, system ones first, then by name. Therapists and administrators.",
    params(
        ("export_type" = Option<ExportType>, Query, description = "Only templates of this export type."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The templates.",
            body = crate::templates::TemplateList
        ),
        (
            status = 400,
            description = "A query parameter is unknown or its value is not valid (`field` names it)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients do not use templates.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
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
    Ok(json(StatusCode::OK, &TemplateList { templates }))
}

#[utoipa::path(
    post,
    path = "/api/v1/export/templates",
    operation_id = "createTemplate",
    tag = "templates",
    summary = "Create a template",
    description = "Saves a minijinja (Jinja2 syntax) template that lays out PDF and DOCX documents of one export type. The source must render the sample data of its type. Therapists and administrators; the template is the caller's own.",
    request_body(content = export_domain::TemplateInput, description = "The template."),
    responses(
        crate::openapi::Guarded,
        (
            status = 201,
            description = "The template; `Location` is its address.",
            body = export_domain::ExportTemplate,
            headers(("Location" = String, description = "The new resource's address."))
        ),
        (
            status = 400,
            description = "The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `options.x`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients do not use templates.",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 409,
            description = "The caller already has a template of this name (`name_taken`, `field: name`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The template is not valid (every problem in `errors`), or the source does not render (`field: template_content`, with the line).",
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

#[utoipa::path(
    get,
    path = "/api/v1/export/templates/{id}",
    operation_id = "getTemplate",
    tag = "templates",
    summary = "Read a template",
    description = "A system template or one of the caller's own; another user's is answered as if it did not exist.",
    params(
        ("id" = Uuid, Path, description = "The template's id."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The template.",
            body = export_domain::ExportTemplate
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients do not use templates.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such template the caller may see.",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
pub async fn get(req: HttpRequest, state: Data, caller: Caller, id: web::Path<String>) -> Answer {
    let id = parse_id(&id, "id")?;
    let engine = state.engine.clone();
    let template = engine_call(&req, move || engine.template(&caller.0, id)).await?;
    Ok(json(StatusCode::OK, &template))
}

#[utoipa::path(
    put,
    path = "/api/v1/export/templates/{id}",
    operation_id = "replaceTemplate",
    tag = "templates",
    summary = "Replace a template",
    description = "Replaces every field of one of the caller's own templates, checked as at creation. The export type cannot change. Exports already queued with it render with the new source.",
    params(
        ("id" = Uuid, Path, description = "The template's id."),
    ),
    request_body(content = export_domain::TemplateInput, description = "The template."),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The template as saved.",
            body = export_domain::ExportTemplate
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`); or The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field` naming it, e.g. `options.x`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients do not use templates. System templates cannot be changed.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such template the caller may see.",
            body = crate::error::ErrorBody<'static>
        ),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (
            status = 409,
            description = "The caller already has a template of this name (`name_taken`, `field: name`), or the export type would change (`type_fixed`, `field: export_type`): it is fixed at creation",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The template is not valid (every problem in `errors`), or the source does not render (`field: template_content`).",
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
    let request = input(&state, payload).await?;
    let engine = state.engine.clone();
    let template = engine_call(&req, move || {
        engine.update_template(&caller.0, id, request, Utc::now())
    })
    .await?;
    Ok(json(StatusCode::OK, &template))
}

#[utoipa::path(
    delete,
    path = "/api/v1/export/templates/{id}",
    operation_id = "deleteTemplate",
    tag = "templates",
    summary = "Delete a template",
    description = "Deletes one of the caller's own templates. Finished exports made with it keep their files; an export still queued with it fails when a worker reaches it.",
    params(
        ("id" = Uuid, Path, description = "The template's id."),
    ),
    responses(
        crate::openapi::Guarded,
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
            status = 403,
            description = "Patients do not use templates. System templates cannot be deleted.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such template the caller may see.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 409,
            description = "A scheduled report uses the template (`in_use`).",
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
    let engine = state.engine.clone();
    engine_call(&req, move || engine.delete_template(&caller.0, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/export/templates/{id}/preview",
    operation_id = "previewTemplate",
    tag = "templates",
    summary = "Preview a template",
    description = "The template rendered as HTML with the sample data of its export type (sample names and figures, no one's records). Takes no body.",
    params(
        ("id" = Uuid, Path, description = "The template's id."),
    ),
    responses(
        crate::openapi::Guarded,
        (
            status = 200,
            description = "The HTML preview.",
            content((String = "text/html")),
            headers(("Cache-Control" = String, description = "`no-store`: the content is not to be cached."))
        ),
        (
            status = 400,
            description = "`id` is not a UUID (`field: id`)",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 403,
            description = "Patients do not use templates.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 404,
            description = "No such template the caller may see.",
            body = crate::error::ErrorBody<'static>
        ),
        (
            status = 422,
            description = "The stored source does not render (`field: template_content`).",
            body = crate::error::ErrorBody<'static>
        ),
    )
)]
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
