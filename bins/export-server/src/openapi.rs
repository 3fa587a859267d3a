//! The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json`, derived from the
//! handlers' `#[utoipa::path]` attributes and the request, response and error types. What every
//! operation shares is added once here: the `X-Request-Id` parameter and response header, the
//! security schemes, and the reusable error responses. The tests below hold the document to the
//! route table and the handlers' real answers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Header, Ref, RefOr, Required, Response};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Clinical Data Export API",
        version = "1.0.0",
        description = include_str!("openapi/api.md"),
    ),
    servers((url = "/", description = "This server.")),
    security(("bearerAuth" = [])),
    tags(
        (name = "system", description = "Health, readiness, metrics and this document."),
        (name = "exports", description = "Requesting exports (asynchronous)."),
        (name = "jobs", description = "Polling, listing, cancelling and downloading exports."),
        (name = "templates", description = "Document templates."),
        (name = "Scheduled reports", description = include_str!("openapi/scheduled-reports.md")),
        (name = "audit", description = "The export audit trail (administrators)."),
    ),
    paths(
        crate::routes::healthz,
        crate::routes::readyz,
        crate::routes::metrics,
        crate::routes::openapi,
        crate::routes::session_notes,
        crate::routes::progress_report,
        crate::routes::treatment_summary,
        crate::routes::full_record,
        crate::routes::list_datasets,
        crate::routes::dataset,
        crate::routes::list_jobs,
        crate::routes::get_job,
        crate::routes::delete_job,
        crate::routes::issue_link,
        crate::routes::download,
        crate::templates::list,
        crate::templates::create,
        crate::templates::get,
        crate::templates::update,
        crate::templates::delete,
        crate::templates::preview,
        crate::scheduled::create,
        crate::scheduled::list,
        crate::scheduled::preview_unsaved,
        crate::scheduled::get,
        crate::scheduled::update,
        crate::scheduled::delete,
        crate::scheduled::run,
        crate::scheduled::preview,
        crate::scheduled::get_notifications,
        crate::scheduled::set_notifications,
        crate::routes::stats,
        crate::routes::audit_logs,
        crate::routes::audit_export,
    ),
    components(responses(
        Unauthorized,
        RateLimited,
        ExportRateLimited,
        PayloadTooLarge,
        InternalError,
        DatabaseUnavailable,
        SchedulerUnavailable,
    )),
    modifiers(&Shared),
)]
struct Api;

/// The document as served: built once, on first use.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        Api::openapi()
            .to_pretty_json()
            .expect("the API document serializes")
    })
}

/// No bearer token, or one that is malformed, expired, signed with another key or algorithm,
/// or whose `sub` is not a user id or `role` not a known role (`unauthorized`).
#[derive(utoipa::ToResponse)]
pub struct Unauthorized(#[allow(dead_code)] ErrorBody<'static>);

/// Too many requests from this client address (`rate_limited`); wait `Retry-After` seconds.
#[derive(utoipa::ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before trying again.")))]
pub struct RateLimited(#[allow(dead_code)] ErrorBody<'static>);

/// Too many requests from this client address, or the caller has requested `exports_per_hour`
/// exports (default 20) in the last hour (`rate_limited`); wait `Retry-After` seconds (for the
/// hourly limit: until the oldest of them is an hour old).
#[derive(utoipa::ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before trying again.")))]
pub struct ExportRateLimited(#[allow(dead_code)] ErrorBody<'static>);

/// The body is larger than the server's `max_body_bytes` (default 1 MiB) (`payload_too_large`).
#[derive(utoipa::ToResponse)]
pub struct PayloadTooLarge(#[allow(dead_code)] ErrorBody<'static>);

/// The server could not complete the request (`internal`); the cause is logged under the
/// request id the message gives.
#[derive(utoipa::ToResponse)]
pub struct InternalError(#[allow(dead_code)] ErrorBody<'static>);

/// The database does not answer (`unavailable`): no connection within the pool's connection
/// timeout (5 s), a refused or broken connection; nothing about the request was wrong, so try
/// it again after `Retry-After` seconds.
#[derive(utoipa::ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before trying again.")))]
pub struct DatabaseUnavailable(#[allow(dead_code)] ErrorBody<'static>);

/// This server process runs without a scheduler, so it does not serve scheduled reports, or
/// the database does not answer (`unavailable`); try again after `Retry-After` seconds (for a
/// missing scheduler: or another process).
#[derive(utoipa::ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before trying again.")))]
pub struct SchedulerUnavailable(#[allow(dead_code)] ErrorBody<'static>);

/// `R`, a reusable response of the document's components, referenced under `status`.
fn reference<R: for<'r> ToResponse<'r>>(status: u16) -> (String, RefOr<Response>) {
    let (name, _) = R::response();
    (
        status.to_string(),
        RefOr::Ref(Ref::from_response_name(name)),
    )
}

/// What every authenticated route can answer besides its own: 401, 429, 500, and 503 with
/// `U` saying why the service is unavailable.
fn guarded<Limit, U>() -> BTreeMap<String, RefOr<Response>>
where
    Limit: for<'r> ToResponse<'r>,
    U: for<'r> ToResponse<'r>,
{
    BTreeMap::from([
        reference::<Unauthorized>(401),
        reference::<Limit>(429),
        reference::<InternalError>(500),
        reference::<U>(503),
    ])
}

/// The answers every authenticated route can give besides its own.
pub struct Guarded;

impl IntoResponses for Guarded {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        guarded::<RateLimited, DatabaseUnavailable>()
    }
}

/// The same for the scheduled-report routes, which a process without a scheduler refuses.
pub struct GuardedSchedules;

impl IntoResponses for GuardedSchedules {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        guarded::<RateLimited, SchedulerUnavailable>()
    }
}

/// What an export submission answers of its own, besides the refusals of its kind.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // shapes for the document
enum Submission {
    /// Accepted: the job is queued. `Content-Location` is the job to poll
    /// (`GET /api/v1/export/jobs/{id}`). A request repeated with the same `Idempotency-Key`
    /// answers 202 with the job first submitted, in its current state, and creates nothing (nor
    /// does it count against the hourly limit).
    #[response(
        status = 202,
        headers(("Content-Location" = String, description = "The job's address, `/api/v1/export/jobs/{id}`: poll it."))
    )]
    Accepted(crate::routes::JobView),
    /// The body is not a JSON object (`bad_request`), is not valid JSON (`malformed_json`), or
    /// has an unknown field or a value of the wrong JSON type (`invalid_field`, with `field`
    /// naming it, e.g. `options.x`); or the `Idempotency-Key` header is not 1 to 255 visible
    /// ASCII characters (`field: Idempotency-Key`).
    #[response(status = 400)]
    BadRequest(ErrorBody<'static>),
    /// The `Idempotency-Key` already names a job of the caller's made from a different request
    /// (`idempotency_key_reused`, `field: Idempotency-Key`); requests racing with one key and the
    /// same body all answer 202 with the same job.
    #[response(status = 409)]
    KeyReused(ErrorBody<'static>),
}

/// What every export submission answers besides its own refusals (403, 422): the submission's
/// answers, a body too large, and the guarded ones with the hourly export limit.
pub struct Submitted;

impl IntoResponses for Submitted {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = Submission::responses();
        responses.extend(guarded::<ExportRateLimited, DatabaseUnavailable>());
        responses.extend([reference::<PayloadTooLarge>(413)]);
        responses
    }
}

/// How an export of clinical records (session notes, a report, a summary, a full record) is
/// refused.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ClinicalRefusals {
    /// The caller may not export this: only therapists export clinical records, and only for
    /// patients they have an active care relationship with; session ids that do not exist or
    /// belong to several patients are refused the same way. The refusal is audited
    /// (`requested`, outcome `denied`).
    #[response(status = 403)]
    Forbidden(ErrorBody<'static>),
    /// The body is well-formed but not valid: every problem is listed in `errors` (`field` and
    /// `message` of the first are repeated at the top). Also a missing required field, a format
    /// the export type does not allow, a `template_id` that names no template the caller may use
    /// or one of another export type.
    #[response(status = 422)]
    Invalid(ErrorBody<'static>),
}

/// The `Idempotency-Key` header of a submission.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct Idempotency {
    /// Makes the request safe to retry: a request repeated with the same key returns the job the
    /// first one created instead of another. A key is the caller's; reusing it for a different
    /// request is refused (409).
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]{1,255}$"
    )]
    idempotency_key: Option<String>,
}

/// What every operation shares.
struct Shared;

impl Modify for Shared {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from the host platform, HS256 or RS256, with claims `sub` (a known \
                         user's id), `role` (therapist, patient, admin; must be the user's stored \
                         role), `exp` and optionally `nbf`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "signedLink",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The `token` of a signed download link from `POST /api/v1/export/jobs/{id}/link`; \
                 only for `GET /api/v1/export/download/{id}`.",
            ))),
        );
        let request_id = request_id_header();
        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .insert("X-Request-Id".into(), RefOr::T(request_id.clone()));
            }
        }
        for item in api.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .insert(0, RefOr::T(request_id_parameter()));
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert("X-Request-Id".into(), RefOr::T(request_id.clone()));
                    }
                }
            }
        }
    }
}

/// The `X-Request-Id` a client may send (`crate::middleware::observe` checks it).
fn request_id_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("X-Request-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "An id to find this request by in the server's logs; 1 to 64 characters of A-Z, a-z, \
             0-9, `-`, `_` and `.` (otherwise the server makes one). Echoed in the response.",
        ))
        // Any value is taken: one that is not such an id is replaced, not refused.
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The `X-Request-Id` on every answer.
fn request_id_header() -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(
        "The request's id: the client's `X-Request-Id` when it is 1 to 64 characters of A-Z, \
         a-z, 0-9, `-`, `_` and `.`, else a fresh one. It is on every log line about the request."
            .into(),
    );
    header
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use std::sync::Arc;

    use actix_web::body::MessageBody;
    use actix_web::dev::ServiceResponse;
    use actix_web::http::Method;
    use actix_web::http::header::HeaderMap;
    use actix_web::{App, middleware, test as actix_test, web};
    use chrono::Utc;
    use export_core::engine::{EngineConfig, ExportEngine};
    use export_core::links::LinkSigner;
    use export_core::source::StoreSource;
    use export_core::storage::{LocalFileStore, MasterKey};
    use export_domain::{Role, SessionStatus};
    use export_schedule::scheduler::Scheduler;
    use export_store::testing::TestDatabase;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::document as served;
    use crate::app::API_ROUTES;
    use crate::client::{IpLimiter, TrustedProxies};
    use crate::state::AppState;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// The paths whose POST creates an export job.
    const SUBMISSIONS: [&str; 4] = [
        "/api/v1/export/session-notes",
        "/api/v1/export/progress-report",
        "/api/v1/export/treatment-summary",
        "/api/v1/export/full-record",
    ];

    fn document() -> Value {
        serde_json::from_str(served()).expect("the document is JSON")
    }

    /// Every operation of the document: (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths is an object");
        let mut out = Vec::new();
        for (path, item) in paths {
            let item = item.as_object().expect("a path item is an object");
            for (key, operation) in item {
                if METHODS.contains(&key.as_str()) {
                    out.push((key.clone(), path.clone(), operation.clone()));
                }
            }
        }
        out
    }

    fn creates_job(method: &str, path: &str) -> bool {
        method == "post"
            && (SUBMISSIONS.contains(&path) || path.starts_with("/api/v1/export/datasets/"))
    }

    /// The value a local `$ref` names.
    fn target<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        doc.pointer(reference.strip_prefix('#')?)
    }

    /// `value`, or what its `$ref`s lead to.
    fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
        let mut value = value;
        for _ in 0..16 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    value = target(doc, reference)
                        .unwrap_or_else(|| panic!("{reference} does not resolve"));
                }
                None => return value,
            }
        }
        panic!("a $ref cycle")
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", Value::String(reference)) => out.push(reference.clone()),
                        _ => collect_refs(item, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
            _ => {}
        }
    }

    /// The security requirements that apply to an operation.
    fn security<'a>(doc: &'a Value, operation: &'a Value) -> &'a [Value] {
        operation
            .get("security")
            .or_else(|| doc.get("security"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether an operation can only be called with credentials: some requirement applies and
    /// none of them is the empty one.
    fn requires_auth(doc: &Value, operation: &Value) -> bool {
        let requirements = security(doc, operation);
        !requirements.is_empty()
            && requirements
                .iter()
                .all(|r| r.as_object().is_some_and(|r| !r.is_empty()))
    }

    /// The operation's parameters, resolved.
    fn parameters<'a>(doc: &'a Value, operation: &'a Value) -> Vec<&'a Value> {
        operation["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(|p| resolve(doc, p)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn openapi_document_parses_and_every_ref_resolves() {
        let doc = document();
        let version = doc["openapi"].as_str().expect("openapi is a string");
        assert_eq!(version, "3.1.0");
        for field in ["title", "version", "description"] {
            assert!(doc["info"][field].is_string(), "info.{field} is missing");
        }
        assert_eq!(doc["servers"][0]["url"], "/");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"],
            json!({
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
            })
        );
        assert_eq!(doc["security"], json!([{"bearerAuth": []}]));

        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in &refs {
            assert!(
                reference.starts_with("#/"),
                "{reference} is not inside the document"
            );
            assert!(
                target(&doc, reference).is_some(),
                "{reference} does not resolve"
            );
        }
        // Nothing in components is left unused.
        let used: BTreeSet<&str> = refs.iter().map(String::as_str).collect();
        for (kind, entries) in doc["components"].as_object().unwrap() {
            if kind == "securitySchemes" {
                continue;
            }
            for name in entries.as_object().unwrap().keys() {
                let reference = format!("#/components/{kind}/{name}");
                assert!(used.contains(reference.as_str()), "{reference} is unused");
            }
        }
        // Readable: indented by two spaces, one member a line.
        assert!(served().starts_with("{\n  \"openapi\": "));
    }

    #[test]
    fn openapi_paths_are_exactly_the_routes() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let routed: BTreeSet<(String, String)> = API_ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(routed.len(), API_ROUTES.len(), "a route is declared twice");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes not in openapi.json: {undocumented:?}; documented but not routed: {unrouted:?}"
        );

        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations(&doc) {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            // The path's {params} are exactly its required path parameters.
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = parameters(&doc, &operation)
                .into_iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{method} {path}: a path parameter");
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(in_path, declared, "{method} {path}: path parameters");
        }
    }

    #[test]
    fn openapi_operations_document_success_auth_errors_and_async_submission() {
        let doc = document();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        let public = ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"];
        for (method, path, operation) in operations(&doc) {
            let at = format!("{method} {path}");
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{at} has no responses"));
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at} documents no 2xx response"
            );
            for requirement in security(&doc, &operation) {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains_key(scheme),
                        "{at}: unknown scheme {scheme}"
                    );
                }
            }
            if public.contains(&path.as_str()) {
                assert!(!requires_auth(&doc, &operation), "{at} is public");
            } else {
                assert!(requires_auth(&doc, &operation), "{at} requires credentials");
                assert!(responses.contains_key("401"), "{at} does not document 401");
            }
            // The per-IP limit applies to every route.
            assert!(responses.contains_key("429"), "{at} does not document 429");
            for (status, response) in responses {
                let response = resolve(&doc, response);
                assert!(
                    response["description"].is_string(),
                    "{at} {status}: no description"
                );
                assert!(
                    response["headers"]["X-Request-Id"].is_object(),
                    "{at} {status}: no X-Request-Id"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"],
                        json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}),
                        "{at} {status}: not the Error schema"
                    );
                }
                if status == "429" || status == "503" {
                    let header = resolve(&doc, &response["headers"]["Retry-After"]);
                    assert!(header.is_object(), "{at} {status}: no Retry-After");
                }
            }
            let idempotency = parameters(&doc, &operation)
                .into_iter()
                .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
            if creates_job(&method, &path) {
                let accepted = resolve(&doc, &responses["202"]);
                assert!(accepted.is_object(), "{at} does not document 202");
                let location = resolve(&doc, &accepted["headers"]["Content-Location"]);
                assert!(location.is_object(), "{at}: no Content-Location");
                assert_eq!(
                    accepted["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/JobView"
                );
                assert!(idempotency, "{at} takes no Idempotency-Key");
                assert!(responses.contains_key("413"), "{at} does not document 413");
                assert!(responses.contains_key("422"), "{at} does not document 422");
            } else {
                assert!(!idempotency, "{at} ignores Idempotency-Key");
            }
        }
        // A download takes the bearer token or a signed link's token.
        let download = &doc["paths"]["/api/v1/export/download/{id}"]["get"];
        assert_eq!(
            download["security"],
            json!([{"bearerAuth": []}, {"signedLink": []}])
        );
        assert_eq!(
            (&schemes["signedLink"]["in"], &schemes["signedLink"]["name"]),
            (&json!("query"), &json!("token"))
        );
    }

    /// The default service's answer to a request no route matches.
    fn is_unrouted(status: u16, body: &[u8]) -> bool {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let no_resource = status == 404
            && body == json!({"error": "not_found", "message": "there is no such resource"});
        let no_method = status == 405 && body["error"] == "method_not_allowed";
        no_resource || no_method
    }

    /// `path` with its {params} filled in.
    fn concrete(path: &str, id: Uuid) -> String {
        path.replace("{id}", &id.to_string())
            .replace("{name}", "sessions")
    }

    #[actix_web::test]
    async fn openapi_every_documented_operation_is_routed() {
        // Without AppState, the handlers answer 500 (no application data) or 200 (healthz,
        // this document); only a request no route matches gets the default service's 404.
        let app = actix_test::init_service(App::new().configure(crate::app::routes)).await;
        let doc = document();
        let id = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (method, path, _) in operations(&doc) {
            let request = actix_test::TestRequest::default()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&concrete(&path, id))
                .to_request();
            let response = actix_test::call_service(&app, request).await;
            let status = response.status().as_u16();
            let body = actix_test::read_body(response).await;
            assert!(
                !is_unrouted(status, &body),
                "{method} {path} is documented but not routed"
            );
            by_path.entry(path).or_default().insert(method);
        }
        // The check can tell: other methods on the same paths, and unknown paths, are unrouted.
        for (path, methods) in &by_path {
            for method in ["get", "post", "put", "delete", "patch"] {
                if methods.contains(method) {
                    continue;
                }
                let request = actix_test::TestRequest::default()
                    .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                    .uri(&concrete(path, id))
                    .to_request();
                let response = actix_test::call_service(&app, request).await;
                let status = response.status().as_u16();
                let body = actix_test::read_body(response).await;
                assert!(
                    is_unrouted(status, &body),
                    "{method} {path} is routed but not documented"
                );
            }
        }
        for uri in ["/api/v1/export/nothing", "/api/v2/export/jobs", "/"] {
            let response = actix_test::call_service(
                &app,
                actix_test::TestRequest::get().uri(uri).to_request(),
            )
            .await;
            let status = response.status().as_u16();
            assert!(
                is_unrouted(status, &actix_test::read_body(response).await),
                "{uri}"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // The handlers against the document.

    /// Checks `value` against `schema` (a schema of the document, or a reference into it) with the
    /// `jsonschema` crate, JSON Schema 2020-12 as OpenAPI 3.1 uses it, formats included.
    fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let mut rooted = match schema {
            // Content without a schema takes any value.
            Value::Null => return Ok(()),
            Value::Object(schema) => schema.clone(),
            other => return Err(format!("{at}: {other} is not a schema")),
        };
        // The document's components beside the schema, so its `#/components/...` references
        // resolve in place.
        rooted.insert("components".into(), doc["components"].clone());
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(rooted))
            .map_err(|e| format!("{at}: the document's schema does not compile: {e}"))?;
        let problems: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{at}: {} (value {value})", problems.join("; ")))
        }
    }

    #[test]
    fn openapi_validation_refuses_what_the_schemas_refuse() {
        let doc = document();
        let job = &json!({"$ref": "#/components/schemas/JobView"});
        assert!(validate(&doc, job, &json!({}), "job").is_err());
        let error = &json!({"$ref": "#/components/schemas/Error"});
        assert!(validate(&doc, error, &json!({"error": "x", "message": "y"}), "e").is_ok());
        assert!(validate(&doc, error, &json!({"error": "x", "message": null}), "e").is_err());
        let input = &json!({"$ref": "#/components/schemas/SessionNotesInput"});
        let ok = json!({"session_ids": [Uuid::nil()], "format": "csv", "note_layout": null});
        assert!(validate(&doc, input, &ok, "in").is_ok());
        for bad in [
            json!({"session_ids": [], "format": "csv"}),
            json!({"session_ids": ["x"], "format": "csv"}),
            json!({"session_ids": [Uuid::nil()], "format": "xml"}),
            json!({"session_ids": [Uuid::nil(), Uuid::nil()], "format": "csv"}),
            json!({"session_ids": [Uuid::nil()], "format": "csv", "options": {"x": true}}),
            json!({"session_ids": [Uuid::nil()], "format": "csv", "colour": 1}),
            json!({"format": "csv"}),
        ] {
            assert!(validate(&doc, input, &bad, "in").is_err(), "{bad}");
        }
        let email = &json!({"$ref": "#/components/schemas/Email"});
        for (address, valid) in [
            ("reports@example.org", true),
            ("first.last+tag@mail.example.co.uk", true),
            ("a@b", false),
            (".a@example.org", false),
            ("a..b@example.org", false),
            ("a@-example.org", false),
            (" a@example.org", false),
        ] {
            assert_eq!(
                validate(&doc, email, &json!(address), "email").is_ok(),
                valid,
                "{address}"
            );
            assert_eq!(export_domain::is_email_address(address), valid, "{address}");
        }
    }

    /// One request to the app.
    #[derive(Debug)]
    struct Call {
        method: &'static str,
        path: &'static str,
        uri: String,
        query: Vec<(String, String)>,
        token: Option<String>,
        headers: Vec<(&'static str, String)>,
        body: Option<Vec<u8>>,
        peer: Option<std::net::SocketAddr>,
    }

    impl Call {
        fn new(method: &'static str, path: &'static str) -> Call {
            Call {
                method,
                path,
                uri: path.to_owned(),
                query: Vec::new(),
                token: None,
                headers: Vec::new(),
                body: None,
                peer: None,
            }
        }

        fn id(mut self, id: impl std::fmt::Display) -> Call {
            self.uri = self.uri.replace("{id}", &id.to_string());
            self
        }

        fn name(mut self, name: &str) -> Call {
            self.uri = self.uri.replace("{name}", name);
            self
        }

        fn query(mut self, name: &str, value: impl std::fmt::Display) -> Call {
            let value = value.to_string();
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)),
                "{value} needs escaping"
            );
            self.query.push((name.to_owned(), value));
            self
        }

        fn auth(mut self, token: &str) -> Call {
            self.token = Some(token.to_owned());
            self
        }

        fn header(mut self, name: &'static str, value: &str) -> Call {
            self.headers.push((name, value.to_owned()));
            self
        }

        fn json(self, body: Value) -> Call {
            self.raw(body.to_string().as_bytes())
        }

        fn raw(mut self, body: &[u8]) -> Call {
            self.body = Some(body.to_vec());
            self
        }
    }

    /// An answer, checked against the document.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: HeaderMap,
        json: Value,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        fn expect(self, status: u16) -> Reply {
            assert_eq!(self.status, status, "{:#}", self.json);
            self
        }
    }

    /// Sends calls and checks each answer against the document; remembers which statuses each
    /// operation answered.
    struct Checker {
        doc: Value,
        seen: BTreeMap<(String, String), BTreeSet<u16>>,
    }

    impl Call {
        fn request(&self) -> actix_test::TestRequest {
            let mut uri = self.uri.clone();
            for (index, (name, value)) in self.query.iter().enumerate() {
                uri.push(if index == 0 { '?' } else { '&' });
                uri.push_str(&format!("{name}={value}"));
            }
            let mut request = actix_test::TestRequest::default()
                .method(Method::from_bytes(self.method.to_uppercase().as_bytes()).unwrap())
                .uri(&uri);
            if let Some(token) = &self.token {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            for (name, value) in &self.headers {
                request = request.insert_header((*name, value.as_str()));
            }
            if let Some(body) = &self.body {
                request = request
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(body.clone());
            }
            if let Some(peer) = self.peer {
                request = request.peer_addr(peer);
            }
            request
        }
    }

    /// Sends a [`Call`] to an app and checks the answer with a [`Checker`].
    macro_rules! send {
        ($checker:expr, $app:expr, $call:expr) => {{
            let call = $call;
            let response = actix_test::call_service(&$app, call.request().to_request()).await;
            $checker.check(call, response).await
        }};
    }

    impl Checker {
        async fn check<B: MessageBody>(
            &mut self,
            call: Call,
            response: ServiceResponse<B>,
        ) -> Reply {
            let at = format!("{} {} ({})", call.method, call.path, call.uri);
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = actix_test::read_body(response).await;

            let doc = &self.doc;
            let operation = &doc["paths"][call.path][call.method];
            assert!(operation.is_object(), "{at} is not documented");
            let documented = operation["responses"]
                .get(status.to_string())
                .unwrap_or_else(|| {
                    panic!(
                        "{at} answered {status}, which is not documented: {}",
                        String::from_utf8_lossy(&body)
                    )
                });
            let documented = resolve(doc, documented);
            // A documented header is on every such answer, but for one the document says is
            // "sent while" something holds.
            for (name, header) in documented["headers"].as_object().into_iter().flatten() {
                let conditional = resolve(doc, header)["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("sent while"));
                if !conditional {
                    assert!(
                        headers.contains_key(name.as_str()),
                        "{at} {status}: no {name}"
                    );
                }
            }
            let media_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
            let mut json = Value::Null;
            match (documented["content"].as_object(), media_type) {
                (None, _) => assert!(body.is_empty(), "{at} {status}: an undocumented body"),
                (Some(content), Some(media_type)) => {
                    let described = content
                        .get(&media_type)
                        .unwrap_or_else(|| panic!("{at} {status}: {media_type} is not documented"));
                    if media_type == "application/json" {
                        json = serde_json::from_slice(&body)
                            .unwrap_or_else(|e| panic!("{at} {status}: not JSON: {e}"));
                        if let Err(problem) = validate(doc, &described["schema"], &json, "body") {
                            panic!("{at} {status}: {problem}\n{json:#}");
                        }
                    }
                }
                (Some(_), None) => panic!("{at} {status}: no Content-Type"),
            }
            if (200..300).contains(&status) {
                // What the server accepted, the document allows.
                let mut known: BTreeSet<String> = parameters(doc, operation)
                    .into_iter()
                    .filter(|p| p["in"] == "query")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                for requirement in security(doc, operation) {
                    for name in requirement.as_object().unwrap().keys() {
                        let scheme = &doc["components"]["securitySchemes"][name];
                        if scheme["in"] == "query" {
                            known.insert(scheme["name"].as_str().unwrap().to_owned());
                        }
                    }
                }
                for (name, _) in &call.headers {
                    let documented = parameters(doc, operation).into_iter().any(|p| {
                        p["in"] == "header"
                            && p["name"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    });
                    assert!(documented, "{at}: header {name} is not documented");
                }
                for (name, value) in &call.query {
                    assert!(known.contains(name), "{at}: query {name} is not documented");
                    let parameter = parameters(doc, operation)
                        .into_iter()
                        .find(|p| p["in"] == "query" && p["name"] == name.as_str());
                    if let Some(parameter) = parameter {
                        let integer = parameter["schema"]["type"] == "integer"
                            || parameter["schema"]["type"]
                                .as_array()
                                .is_some_and(|kinds| kinds.contains(&json!("integer")));
                        let typed = if integer {
                            json!(value.parse::<i64>().unwrap())
                        } else {
                            json!(value)
                        };
                        validate(doc, &parameter["schema"], &typed, name).unwrap();
                    }
                }
                if let Some(body) = call.body.as_deref().filter(|b| !b.is_empty()) {
                    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
                    assert!(schema.is_object(), "{at}: the body is not documented");
                    let sent: Value = serde_json::from_slice(body).unwrap();
                    if let Err(problem) = validate(doc, schema, &sent, "request") {
                        panic!("{at}: the server accepted a body the document refuses: {problem}");
                    }
                }
            }
            self.seen
                .entry((call.method.to_owned(), call.path.to_owned()))
                .or_default()
                .insert(status);
            Reply {
                status,
                headers,
                json,
            }
        }
    }

    const SECRET: &[u8] = b"the openapi test's token secret, 32 bytes or more";

    fn token(user: Uuid, role: Role, exp_in: i64) -> String {
        let claims = crate::auth::Claims {
            sub: user.to_string(),
            role: role.to_string(),
            exp: Utc::now().timestamp() + exp_in,
            nbf: None,
            iat: None,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    /// The people of the demo practice the scenario acts as.
    struct People {
        admin: Uuid,
        therapist: Uuid,
        /// The therapist's patient, with a processed session.
        patient: Uuid,
        session: Uuid,
        /// A patient the therapist does not care for.
        stranger: Uuid,
    }

    fn people(practice: &export_domain::Practice) -> People {
        let admin = practice
            .users
            .iter()
            .find(|u| u.role == Role::Admin)
            .unwrap()
            .id;
        let (therapist, patient, session) = practice
            .therapist_patients
            .iter()
            .filter(|l| l.is_active)
            .find_map(|l| {
                let session = practice.therapy_sessions.iter().find(|s| {
                    s.patient_id == l.patient_id
                        && s.therapist_id == l.therapist_id
                        && s.status == SessionStatus::Processed
                })?;
                Some((l.therapist_id, l.patient_id, session.id))
            })
            .expect("a therapist with a processed session of an active patient");
        let stranger = practice
            .users
            .iter()
            .filter(|u| u.role == Role::Patient)
            .find(|u| {
                !practice
                    .therapist_patients
                    .iter()
                    .any(|l| l.therapist_id == therapist && l.patient_id == u.id)
            })
            .unwrap()
            .id;
        People {
            admin,
            therapist,
            patient,
            session,
            stranger,
        }
    }

    fn state(
        engine: &Arc<ExportEngine>,
        per_minute_per_ip: u32,
        scheduler: Option<Arc<Scheduler>>,
    ) -> web::Data<AppState> {
        web::Data::new(AppState {
            engine: engine.clone(),
            tokens: crate::auth::TokenVerifier::hs256(SECRET, 5).unwrap(),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            ip_limiter: IpLimiter::new(per_minute_per_ip),
            proxies: TrustedProxies::default(),
            exports_per_hour: 12,
            link_minutes: 15,
            max_body_bytes: 64 * 1024,
            waker: None,
            scheduler,
        })
    }

    /// The path and query of a link's `url`, as a download call.
    fn link_call(url: &str) -> Call {
        let (path, token) = url.split_once("?token=").expect("a link with a token");
        let id = path.rsplit('/').next().unwrap();
        Call::new("get", "/api/v1/export/download/{id}")
            .id(id)
            .query("token", token)
    }

    #[actix_web::test]
    async fn openapi_handlers_answer_as_documented() {
        let db = TestDatabase::sqlite();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let practice = export_store::seed::load_practice(&fixtures).unwrap();
        db.store
            .transaction(|conn| export_store::seed::seed_practice(conn, &practice))
            .unwrap();
        let who = people(&practice);
        let files = tempfile::tempdir().unwrap();
        let engine = Arc::new(
            ExportEngine::new(
                db.store.clone(),
                Arc::new(LocalFileStore::new(files.path(), MasterKey::generate()).unwrap()),
                Arc::new(StoreSource(db.store.clone())),
                EngineConfig::default(),
            )
            .with_link_signer(LinkSigner::new(b"the openapi test's link key".to_vec())),
        );
        let scheduler = Arc::new(Scheduler::new(engine.clone(), db.store.clone()));
        let app = actix_test::init_service(
            App::new()
                .app_data(state(&engine, 1_000_000, Some(scheduler)))
                .wrap(crate::middleware::json_errors())
                .wrap(middleware::from_fn(crate::middleware::observe))
                .configure(crate::app::routes),
        )
        .await;
        let doc = document();
        let mut c = Checker {
            doc: doc.clone(),
            seen: BTreeMap::new(),
        };
        let admin = token(who.admin, Role::Admin, 3600);
        let therapist = token(who.therapist, Role::Therapist, 3600);
        let patient = token(who.patient, Role::Patient, 3600);
        let (p, t) = (who.patient, therapist.as_str());
        let unknown = Uuid::new_v4();

        // Public routes.
        send!(c, app, Call::new("get", "/healthz")).expect(200);
        send!(c, app, Call::new("get", "/readyz")).expect(200);
        send!(c, app, Call::new("get", "/metrics")).expect(200);
        let served = send!(c, app, Call::new("get", "/api/v1/openapi.json")).expect(200);
        assert_eq!(served.json, doc);
        let echoed = send!(
            c,
            app,
            Call::new("get", "/healthz").header("X-Request-Id", "abc-1")
        );
        assert_eq!(echoed.header("x-request-id"), Some("abc-1"));

        // Every other operation wants credentials, whatever the rest of the request.
        for (method, path) in API_ROUTES {
            let operation = &doc["paths"][*path][*method];
            if !requires_auth(&doc, operation) {
                continue;
            }
            let call = Call::new(method, path).id(unknown).name("sessions");
            let call = if *method == "post" || *method == "put" {
                call.json(json!({}))
            } else {
                call
            };
            send!(c, app, call).expect(401);
        }
        let expired = token(who.therapist, Role::Therapist, -3600);
        for bad in [expired.as_str(), "not.a.token"] {
            let reply = send!(c, app, Call::new("get", "/api/v1/export/jobs").auth(bad));
            assert_eq!(reply.expect(401).json["error"], "unauthorized");
        }

        // Submissions: 202 + Content-Location, idempotent replays, and every kind of refusal.
        let report = json!({
            "patient_id": p, "start_date": "2024-01-01", "end_date": "2026-12-31",
            "format": "json", "include_sections": {"recommendations": false},
        });
        let submit = |body: &Value| {
            Call::new("post", "/api/v1/export/progress-report")
                .auth(t)
                .header("Idempotency-Key", "report-1")
                .json(body.clone())
        };
        let first = send!(c, app, submit(&report)).expect(202);
        let report_id = first.json["id"].as_str().unwrap().to_owned();
        assert_eq!(
            first.header("content-location"),
            Some(format!("/api/v1/export/jobs/{report_id}").as_str())
        );
        let again = send!(c, app, submit(&report)).expect(202);
        assert_eq!(again.json["id"], first.json["id"]);
        let mut changed = report.clone();
        changed["format"] = json!("pdf");
        let reused = send!(c, app, submit(&changed)).expect(409);
        assert_eq!(reused.json["field"], "Idempotency-Key");
        assert_eq!(reused.json["error"], "idempotency_key_reused");
        let bad_key = submit(&report);
        let bad_key = Call {
            headers: vec![("Idempotency-Key", "two words".to_owned())],
            ..bad_key
        };
        send!(c, app, bad_key).expect(400);
        send!(c, app, submit(&report).auth(&patient)).expect(403);

        let notes = |body: Value| {
            Call::new("post", "/api/v1/export/session-notes")
                .auth(t)
                .json(body)
        };
        let invalid = send!(c, app, notes(json!({"session_ids": [], "format": "xml"})));
        assert!(invalid.expect(422).json["errors"].as_array().unwrap().len() >= 2);
        let unknown_field = send!(c, app, notes(json!({"format": "json", "colour": 1})));
        assert_eq!(unknown_field.expect(400).json["field"], "colour");
        for raw in [&b"[1]"[..], b"{", b"", b"{} {}"] {
            let call = Call::new("post", "/api/v1/export/session-notes")
                .auth(t)
                .raw(raw);
            send!(c, app, call).expect(400);
        }
        send!(
            c,
            app,
            notes(json!({"session_ids": [unknown], "format": "json"}))
        )
        .expect(403);
        let notes_job = send!(
            c,
            app,
            notes(json!({
                "session_ids": [who.session], "format": "csv",
                "options": {"include_transcript": true}, "note_layout": "soap",
            }))
        )
        .expect(202);
        let summary = Call::new("post", "/api/v1/export/treatment-summary")
            .auth(t)
            .json(json!({"patient_id": p, "format": "json", "purpose": "records"}));
        let summary_job = send!(c, app, summary).expect(202);
        let record = |patient: Uuid| {
            Call::new("post", "/api/v1/export/full-record")
                .auth(t)
                .json(json!({
                    "patient_id": patient, "format": "json",
                    "date_range": {"start": "2024-01-01", "end": "2026-12-31"},
                }))
        };
        let record_job = send!(c, app, record(p)).expect(202);
        send!(c, app, record(who.stranger)).expect(403);
        let dataset = |name: &str, token: &str, body: Value| {
            Call::new("post", "/api/v1/export/datasets/{name}")
                .name(name)
                .auth(token)
                .json(body)
        };
        let sessions_job = send!(
            c,
            app,
            dataset(
                "sessions",
                t,
                json!({"format": "csv", "filters": {"patient_id": p}})
            )
        )
        .expect(202);
        let audit_job =
            send!(c, app, dataset("audit", &admin, json!({"format": "xlsx"}))).expect(202);
        send!(c, app, dataset("audit", t, json!({"format": "csv"}))).expect(403);
        let nothing = send!(c, app, dataset("nothing", t, json!({"format": "csv"})));
        assert_eq!(nothing.expect(404).json["field"], "dataset");
        let filter = json!({"format": "csv", "filters": {"colour": "red"}});
        send!(c, app, dataset("sessions", t, filter)).expect(422);

        // Listing and polling.
        let datasets = send!(c, app, Call::new("get", "/api/v1/export/datasets").auth(t));
        let names: BTreeSet<&str> = datasets.json["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert!(names.is_superset(&BTreeSet::from(["sessions", "goals", "audit"])));
        let jobs = || Call::new("get", "/api/v1/export/jobs").auth(t);
        let all = send!(c, app, jobs()).expect(200);
        assert_eq!(all.json["jobs"].as_array().unwrap().len(), 5);
        let page = send!(c, app, jobs().query("limit", 2)).expect(200);
        let cursor = page.json["next_cursor"].as_str().unwrap().to_owned();
        let next = send!(c, app, jobs().query("limit", 2).query("cursor", &cursor)).expect(200);
        assert_ne!(next.json["jobs"][0]["id"], page.json["jobs"][0]["id"]);
        // A well-formed cursor is a position, also one no page ever gave: past the last year
        // the databases hold it is before every job, before 1970 after every job.
        let zeros = "0".repeat(32);
        let future = format!("999999999999999999_{zeros}");
        let from_the_future = send!(c, app, jobs().query("cursor", &future)).expect(200);
        assert_eq!(from_the_future.json["jobs"], all.json["jobs"]);
        let past = format!("-999999999999999999_{zeros}");
        let from_the_past = send!(c, app, jobs().query("cursor", &past)).expect(200);
        assert_eq!(from_the_past.json["jobs"], json!([]));
        send!(
            c,
            app,
            jobs().query("status", "pending").query("patient_id", p)
        )
        .expect(200);
        for (name, value) in [
            ("limit", "0"),
            ("status", "done"),
            ("patient_id", "x"),
            ("cursor", "x"),
            ("colour", "red"),
        ] {
            send!(c, app, jobs().query(name, value)).expect(400);
        }
        let job = |method: &'static str, path: &'static str, id: &str, token: &str| {
            Call::new(method, path).id(id).auth(token)
        };
        let (job_path, link_path, download_path) = (
            "/api/v1/export/jobs/{id}",
            "/api/v1/export/jobs/{id}/link",
            "/api/v1/export/download/{id}",
        );
        let polled = send!(c, app, job("get", job_path, &report_id, t)).expect(200);
        assert_eq!(polled.header("retry-after"), Some("2"));
        send!(c, app, job("get", job_path, "nope", t)).expect(400);
        send!(c, app, job("get", job_path, &unknown.to_string(), t)).expect(404);
        let audit_id = audit_job.json["id"].as_str().unwrap();
        send!(c, app, job("get", job_path, audit_id, t)).expect(404);
        send!(c, app, job("post", link_path, &report_id, t)).expect(409);
        let minutes = job("post", link_path, &report_id, t).json(json!({"minutes": 0}));
        assert_eq!(send!(c, app, minutes).expect(422).json["field"], "minutes");
        let odd = job("post", link_path, &report_id, t).json(json!({"hours": 1}));
        send!(c, app, odd).expect(400);
        send!(c, app, job("get", download_path, &report_id, t)).expect(409);

        // The workers produce the files.
        while engine
            .run_next("openapi-test", Utc::now())
            .unwrap()
            .is_some()
        {}
        let done = send!(c, app, job("get", job_path, &report_id, t)).expect(200);
        assert_eq!(done.json["status"], "completed", "{:#}", done.json);
        assert_eq!(done.header("retry-after"), None);
        assert_eq!(
            done.json["download_url"],
            format!("/api/v1/export/download/{report_id}")
        );
        for (id, token, media_type) in [
            (report_id.as_str(), t, "application/json"),
            (notes_job.json["id"].as_str().unwrap(), t, "text/csv"),
            (sessions_job.json["id"].as_str().unwrap(), t, "text/csv"),
            (
                audit_id,
                admin.as_str(),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
        ] {
            let file = send!(c, app, job("get", download_path, id, token)).expect(200);
            assert!(file.header("content-type").unwrap().starts_with(media_type));
            assert_eq!(file.header("x-export-job-id"), Some(id));
            assert!(file.header("etag").is_some());
        }
        let disposition = send!(c, app, job("get", download_path, &report_id, t));
        assert_eq!(
            disposition.header("content-disposition"),
            Some(
                format!("attachment; filename=\"export_progress_report_{report_id}.json\"")
                    .as_str()
            )
        );
        send!(c, app, job("get", download_path, &report_id, &admin)).expect(404);

        // Signed links.
        let link = send!(c, app, job("post", link_path, &report_id, t)).expect(201);
        let url = link.json["url"].as_str().unwrap().to_owned();
        let short = job("post", link_path, &report_id, t).json(json!({"minutes": 5}));
        send!(c, app, short).expect(201);
        // A whole number sent as a float is a number; JSON null asks for the defaults.
        let float = job("post", link_path, &report_id, t).json(json!({"minutes": 5.0}));
        send!(c, app, float).expect(201);
        let null = job("post", link_path, &report_id, t).raw(b"null");
        send!(c, app, null).expect(201);
        send!(c, app, link_call(&url)).expect(200);
        let summary_id = summary_job.json["id"].as_str().unwrap();
        let elsewhere = Call {
            uri: format!("/api/v1/export/download/{summary_id}"),
            ..link_call(&url)
        };
        send!(c, app, elsewhere).expect(403);
        let forged = job("get", download_path, &report_id, t).query("token", "forged.token");
        send!(
            c,
            app,
            Call {
                token: None,
                ..forged
            }
        )
        .expect(403);
        let admin_link = send!(c, app, job("post", link_path, audit_id, &admin)).expect(201);
        let admin_url = admin_link.json["url"].as_str().unwrap().to_owned();
        send!(c, app, link_call(&admin_url)).expect(200);

        // Cancelling and deleting.
        let queued = send!(c, app, record(p)).expect(202);
        let queued_id = queued.json["id"].as_str().unwrap().to_owned();
        let cancelled = send!(c, app, job("delete", job_path, &queued_id, t)).expect(200);
        assert_eq!(cancelled.json["status"], "cancelled");
        send!(c, app, job("get", download_path, &queued_id, t)).expect(410);
        send!(c, app, job("post", link_path, &queued_id, t)).expect(410);
        let record_id = record_job.json["id"].as_str().unwrap();
        send!(c, app, job("delete", job_path, record_id, t)).expect(204);
        send!(c, app, job("get", job_path, record_id, t)).expect(404);
        send!(c, app, job("delete", job_path, record_id, t)).expect(404);
        send!(c, app, job("delete", job_path, "nope", t)).expect(400);

        // Templates.
        let templates = |token: &str| Call::new("get", "/api/v1/export/templates").auth(token);
        send!(c, app, templates(t)).expect(200);
        send!(
            c,
            app,
            templates(&admin).query("export_type", "progress_report")
        )
        .expect(200);
        send!(c, app, templates(t).query("export_type", "poem")).expect(400);
        send!(c, app, templates(t).query("colour", "red")).expect(400);
        send!(c, app, templates(&patient)).expect(403);
        let template = json!({
            "name": "Short progress", "description": "One heading",
            "export_type": "progress_report", "format": "pdf",
            "template_content": "<h1>{{ header.title }}</h1>",
            "include_sections": {"assessments": false},
        });
        let create = |body: Value| {
            Call::new("post", "/api/v1/export/templates")
                .auth(t)
                .json(body)
        };
        let created = send!(c, app, create(template.clone())).expect(201);
        let template_id = created.json["id"].as_str().unwrap().to_owned();
        assert_eq!(
            created.header("location"),
            Some(format!("/api/v1/export/templates/{template_id}").as_str())
        );
        assert_eq!(
            send!(c, app, create(template.clone())).expect(409).json["field"],
            "name"
        );
        let mut broken = template.clone();
        broken["name"] = json!("Broken");
        broken["template_content"] = json!("{% if %}");
        send!(c, app, create(broken)).expect(422);
        send!(c, app, create(json!({}))).expect(422);
        send!(c, app, create(json!({"name": 1}))).expect(400);
        let mut huge = template.clone();
        huge["template_content"] = json!("x".repeat(100 * 1024));
        send!(c, app, create(huge)).expect(413);
        send!(c, app, create(template.clone()).auth(&patient)).expect(403);
        let one = "/api/v1/export/templates/{id}";
        send!(c, app, job("get", one, &template_id, t)).expect(200);
        send!(c, app, job("get", one, &template_id, &admin)).expect(404);
        send!(c, app, job("get", one, &unknown.to_string(), t)).expect(404);
        send!(c, app, job("get", one, "nope", t)).expect(400);
        let mut renamed = template.clone();
        renamed["name"] = json!("Renamed");
        renamed["format"] = json!("docx");
        renamed["description"] = Value::Null;
        let replaced = send!(c, app, job("put", one, &template_id, t).json(renamed)).expect(200);
        assert_eq!(replaced.json["name"], "Renamed");
        let mut retyped = template.clone();
        retyped["export_type"] = json!("treatment_summary");
        retyped["include_sections"] = json!({});
        let refused = send!(c, app, job("put", one, &template_id, t).json(retyped));
        assert_eq!(refused.expect(409).json["field"], "export_type");
        let preview = "/api/v1/export/templates/{id}/preview";
        let html = send!(c, app, job("post", preview, &template_id, t)).expect(200);
        assert!(
            html.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        send!(c, app, job("post", preview, &unknown.to_string(), t)).expect(404);
        send!(c, app, job("delete", one, &template_id, t)).expect(204);
        send!(c, app, job("delete", one, &template_id, t)).expect(404);

        // Scheduled reports: Margaret schedules a report about Zoë, her patient.
        let margaret_id = Uuid::parse_str("7d25348d-75bb-5e22-8073-05bfd9b3230c").unwrap();
        let zoe = Uuid::parse_str("4333a588-c713-5117-85aa-6c9dc288e1df").unwrap();
        let margaret = token(margaret_id, Role::Therapist, 3600);
        let m = margaret.as_str();
        let weekly = json!({
            "name": "Weekly progress", "export_type": "progress_report", "format": "pdf",
            "template_content": "<h1>{{ header.title }}</h1>",
        });
        let weekly = send!(c, app, create(weekly).auth(m)).expect(201);
        let weekly_id = weekly.json["id"].as_str().unwrap().to_owned();
        let daily = json!({
            "template_id": weekly_id, "patient_id": zoe, "schedule_type": "daily",
            "schedule_config": {"time": "08:30"}, "timezone": "Europe/London",
            "parameters": {"period_days": 7}, "delivery_method": "storage",
        });
        let scheduled = "/api/v1/export/scheduled";
        let schedule = |body: &Value, token: &str| {
            Call::new("post", "/api/v1/export/scheduled")
                .auth(token)
                .json(body.clone())
        };
        let saved = send!(c, app, schedule(&daily, m)).expect(201);
        let schedule_id = saved.json["id"].as_str().unwrap().to_owned();
        assert_eq!(
            saved.header("location"),
            Some(format!("{scheduled}/{schedule_id}").as_str())
        );
        assert_eq!(saved.json["is_active"], true);
        assert_eq!(saved.json["user_id"], json!(margaret_id));
        assert!(saved.json["next_run_at"].is_string());
        assert!(saved.json.get("recent_runs").is_none());
        let twice = send!(c, app, schedule(&daily, m)).expect(409);
        assert_eq!(twice.json["field"], "template_id");
        // Refusals: each names its field.
        let with = |changes: Value| {
            let mut body = daily.clone();
            for (name, value) in changes.as_object().unwrap() {
                body[name] = value.clone();
            }
            body
        };
        for (changes, field) in [
            (
                json!({"schedule_type": "cron", "schedule_config": {"cron": "5/15 * * * *"}}),
                "schedule_config.cron",
            ),
            (
                json!({"schedule_type": "cron", "schedule_config": {"cron": "0 9 * *"}}),
                "schedule_config.cron",
            ),
            (json!({"timezone": "Mars/Olympus_Mons"}), "timezone"),
            (json!({"timezone": "Europe/London; DROP"}), "timezone"),
            (
                json!({"schedule_config": {"time": "24:00"}}),
                "schedule_config.time",
            ),
            (
                json!({"schedule_type": "weekly", "schedule_config": {"time": "09:00"}}),
                "schedule_config.day_of_week",
            ),
            (
                json!({"schedule_config": {"time": "09:00", "hour": 9}}),
                "schedule_config.hour",
            ),
            (json!({"template_id": unknown}), "template_id"),
            (json!({"patient_id": null}), "patient_id"),
            (
                json!({"parameters": {"period_days": 400}}),
                "parameters.period_days",
            ),
            (json!({"delivery_method": "email"}), "email_recipients"),
            (json!({"delivery_method": "pigeon"}), "delivery_method"),
        ] {
            let refused = send!(c, app, schedule(&with(changes.clone()), m)).expect(422);
            assert_eq!(refused.json["field"], field, "{changes}");
        }
        // Session notes are not scheduled.
        let notes_template = json!({
            "name": "Notes", "export_type": "session_notes", "format": "pdf",
            "template_content": "<h1>{{ header.title }}</h1>",
        });
        let notes_template = send!(c, app, create(notes_template).auth(m)).expect(201);
        let notes_template = notes_template.json["id"].as_str().unwrap().to_owned();
        let notes = with(json!({"template_id": notes_template}));
        let refused = send!(c, app, schedule(&notes, m)).expect(422);
        assert_eq!(refused.json["field"], "template_id");
        send!(c, app, schedule(&with(json!({"colour": "red"})), m)).expect(400);
        send!(
            c,
            app,
            schedule(&with(json!({"patient_id": who.stranger})), m)
        )
        .expect(403);
        send!(c, app, schedule(&daily, &admin)).expect(403);
        send!(c, app, schedule(&daily, &patient)).expect(403);

        // Reading.
        let listed = send!(c, app, Call::new("get", scheduled).auth(m)).expect(200);
        let listed = listed.json["scheduled_reports"].as_array().unwrap().clone();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["id"], json!(schedule_id));
        let theirs = send!(c, app, Call::new("get", scheduled).auth(&admin)).expect(200);
        assert_eq!(theirs.json["scheduled_reports"], json!([]));
        let one_schedule = "/api/v1/export/scheduled/{id}";
        let read = send!(c, app, job("get", one_schedule, &schedule_id, m)).expect(200);
        assert_eq!(read.json["recent_runs"], json!([]));
        send!(c, app, job("get", one_schedule, &schedule_id, &admin)).expect(404);
        send!(c, app, job("get", one_schedule, &unknown.to_string(), m)).expect(404);
        send!(c, app, job("get", one_schedule, "nope", m)).expect(400);

        // Previews, saved and not.
        let next = "/api/v1/export/scheduled/{id}/preview";
        let runs = send!(c, app, job("get", next, &schedule_id, m).query("count", 3)).expect(200);
        let runs = runs.json["next_runs"].as_array().unwrap().clone();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0], saved.json["next_run_at"]);
        let five = send!(c, app, job("get", next, &schedule_id, m)).expect(200);
        assert_eq!(five.json["next_runs"].as_array().unwrap().len(), 5);
        for (name, value) in [("count", "0"), ("count", "101"), ("colour", "red")] {
            let call = job("get", next, &schedule_id, m).query(name, value);
            assert_eq!(send!(c, app, call).expect(400).json["field"], name);
        }
        send!(c, app, job("get", next, &unknown.to_string(), m)).expect(404);
        let unsaved = |body: &Value| {
            Call::new("post", "/api/v1/export/scheduled/preview")
                .auth(m)
                .json(body.clone())
        };
        let cron = with(json!({
            "schedule_type": "cron", "timezone": "America/New_York",
            "schedule_config": {"cron": "*/15 2 * * MON-FRI"},
        }));
        let previewed = send!(c, app, unsaved(&cron).query("count", 8)).expect(200);
        assert_eq!(previewed.json["next_runs"].as_array().unwrap().len(), 8);
        let monthly = with(json!({
            "schedule_type": "monthly", "schedule_config": {"hour": 7, "day_of_month": 31},
        }));
        send!(c, app, unsaved(&monthly)).expect(200);
        let bad =
            with(json!({"schedule_type": "cron", "schedule_config": {"cron": "0 9 * * FUNDAY"}}));
        assert_eq!(
            send!(c, app, unsaved(&bad)).expect(422).json["field"],
            "schedule_config.cron"
        );
        send!(c, app, unsaved(&daily).query("count", "x")).expect(400);
        send!(c, app, unsaved(&daily).auth(&admin)).expect(403);
        send!(c, app, unsaved(&with(json!({"colour": 1})))).expect(400);

        // Pausing, changing and resuming.
        let patch = |id: &str, body: Value| job("patch", one_schedule, id, m).json(body);
        let paused = send!(c, app, patch(&schedule_id, json!({"is_active": false}))).expect(200);
        assert_eq!(paused.json["is_active"], false);
        assert_eq!(paused.json["schedule_config"], json!({"time": "08:30"}));
        let moved = json!({
            "schedule_type": "weekly", "schedule_config": {"time": "18:00", "day_of_week": 4},
            "parameters": {"period_days": 14},
        });
        let changed = send!(c, app, patch(&schedule_id, moved)).expect(200);
        assert_eq!(changed.json["schedule_type"], "weekly");
        assert_eq!(changed.json["timezone"], "Europe/London");
        assert_eq!(changed.json["is_active"], false);
        let wrong = patch(&schedule_id, json!({"schedule_config": {"time": "25:00"}}));
        // The config given replaces the stored one whole: the day of the week is gone too.
        let wrong = send!(c, app, wrong).expect(422);
        assert_eq!(wrong.json["field"], "schedule_config.time");
        assert_eq!(
            wrong.json["errors"][1]["field"],
            "schedule_config.day_of_week"
        );
        let not_bool = send!(c, app, patch(&schedule_id, json!({"is_active": "no"})));
        assert_eq!(not_bool.expect(400).json["field"], "is_active");
        send!(c, app, patch(&schedule_id, json!({"colour": 1}))).expect(400);
        send!(c, app, patch(&unknown.to_string(), json!({}))).expect(404);
        send!(c, app, patch("nope", json!({}))).expect(400);
        // While it is paused another may be active; then it cannot be resumed.
        let other = send!(c, app, schedule(&daily, m)).expect(201);
        let other_id = other.json["id"].as_str().unwrap().to_owned();
        let resume = send!(c, app, patch(&schedule_id, json!({"is_active": true})));
        assert_eq!(resume.expect(409).json["field"], "is_active");
        send!(c, app, job("delete", one_schedule, &other_id, m)).expect(204);
        let resumed = send!(c, app, patch(&schedule_id, json!({"is_active": true}))).expect(200);
        assert_eq!(resumed.json["is_active"], true);

        // Running now: one run, its job at Content-Location.
        let run_now = "/api/v1/export/scheduled/{id}/run";
        let ran = send!(c, app, job("post", run_now, &schedule_id, m)).expect(202);
        assert_eq!(ran.json["status"], "submitted", "{:#}", ran.json);
        assert_eq!(ran.json["skipped"], 0);
        let run_job = ran.json["export_job_id"].as_str().unwrap().to_owned();
        assert_eq!(
            ran.header("content-location"),
            Some(format!("/api/v1/export/jobs/{run_job}").as_str())
        );
        let made = send!(c, app, job("get", job_path, &run_job, m)).expect(200);
        assert_eq!(made.json["export_type"], "progress_report");
        assert_eq!(made.json["template_id"], json!(weekly_id));
        let read = send!(c, app, job("get", one_schedule, &schedule_id, m)).expect(200);
        assert_eq!(read.json["recent_runs"][0]["id"], ran.json["id"]);
        send!(c, app, job("post", run_now, &unknown.to_string(), m)).expect(404);
        send!(c, app, job("post", run_now, &schedule_id, &admin)).expect(404);
        send!(c, app, job("post", run_now, "nope", m)).expect(400);
        let counted = Call::new("get", "/api/v1/export/stats").auth(m);
        let counted = send!(c, app, counted).expect(200);
        assert_eq!(
            counted.json["scheduled"],
            json!({"runs": 1, "skipped": 0, "refused": 0, "delivered": 0, "delivery_failed": 0})
        );

        // A template in use stays; deleting the schedule frees it.
        let template_path = "/api/v1/export/templates/{id}";
        send!(c, app, job("delete", template_path, &weekly_id, m)).expect(409);
        send!(c, app, job("delete", one_schedule, &schedule_id, m)).expect(204);
        send!(c, app, job("delete", one_schedule, &schedule_id, m)).expect(404);
        send!(c, app, job("get", one_schedule, &schedule_id, m)).expect(404);
        send!(c, app, job("delete", one_schedule, "nope", m)).expect(400);
        send!(c, app, job("delete", template_path, &weekly_id, m)).expect(204);

        // A process without a scheduler.
        let unscheduled = actix_test::init_service(
            App::new()
                .app_data(state(&engine, 1_000_000, None))
                .wrap(crate::middleware::json_errors())
                .wrap(middleware::from_fn(crate::middleware::observe))
                .configure(crate::app::routes),
        )
        .await;
        let unavailable = send!(c, unscheduled, Call::new("get", scheduled).auth(m));
        assert_eq!(unavailable.expect(503).json["error"], "unavailable");
        let stats_there = Call::new("get", "/api/v1/export/stats").auth(m);
        let without = send!(c, unscheduled, stats_there).expect(200);
        assert!(without.json.get("scheduled").is_none());

        // Notification preferences.
        let notifications = "/api/v1/export/notifications";
        let unset = send!(c, app, Call::new("get", notifications).auth(t)).expect(200);
        assert!(unset.json["notifications"].is_null());
        let set = Call::new("put", notifications)
            .auth(t)
            .json(json!({"email": "me@clinic.example", "on_completed": true}));
        let set = send!(c, app, set).expect(200);
        assert_eq!(set.json["notifications"]["on_completed"], true);
        assert_eq!(set.json["notifications"]["on_failed"], false);
        let read = send!(c, app, Call::new("get", notifications).auth(t)).expect(200);
        assert_eq!(read.json["notifications"]["email"], "me@clinic.example");
        let bad = Call::new("put", notifications)
            .auth(t)
            .json(json!({"email": "not an address"}));
        assert_eq!(send!(c, app, bad).expect(422).json["field"], "email");
        let unknown = Call::new("put", notifications)
            .auth(t)
            .json(json!({"email": "me@clinic.example", "sms": true}));
        send!(c, app, unknown).expect(400);
        let by_patient = Call::new("put", notifications)
            .auth(&patient)
            .json(json!({"email": "p@clinic.example"}));
        send!(c, app, by_patient).expect(403);

        // Statistics.
        let stats = |token: &str| Call::new("get", "/api/v1/export/stats").auth(token);
        let mine = send!(c, app, stats(t)).expect(200);
        assert!(mine.json["total"].as_u64().unwrap() >= 5);
        let everyone = send!(c, app, stats(&admin).query("days", 30)).expect(200);
        assert!(everyone.json["scheduled"].is_object());
        send!(c, app, stats(t).query("days", 0)).expect(400);
        send!(c, app, stats(t).query("weeks", 1)).expect(400);
        send!(c, app, stats(&patient)).expect(403);

        // The audit trail.
        let logs = |token: &str| Call::new("get", "/api/v1/audit/logs").auth(token);
        let first_page = send!(c, app, logs(&admin).query("limit", 2)).expect(200);
        let after = first_page.json["next_after"].as_i64().unwrap();
        send!(c, app, logs(&admin).query("after", after).query("limit", 2)).expect(200);
        let filtered = logs(&admin)
            .query("action", "downloaded")
            .query("user_id", who.therapist)
            .query("patient_id", p)
            .query("export_job_id", &report_id)
            .query("from", "2020-01-01")
            .query("to", "2100-01-01");
        let downloads = send!(c, app, filtered).expect(200);
        assert!(!downloads.json["entries"].as_array().unwrap().is_empty());
        for (name, value) in [
            ("action", "sung"),
            ("limit", "1001"),
            ("after", "x"),
            ("from", "2020-13-01"),
            ("colour", "red"),
        ] {
            send!(c, app, logs(&admin).query(name, value)).expect(400);
        }
        send!(c, app, logs(t)).expect(403);
        let export = |token: &str| Call::new("get", "/api/v1/audit/logs/export").auth(token);
        let csv = send!(c, app, export(&admin).query("action", "shared")).expect(200);
        assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
        send!(c, app, export(&admin).query("to", "x")).expect(400);
        send!(c, app, export(t)).expect(403);

        // The hourly limit of exports per user.
        let mut limited = None;
        for _ in 0..20 {
            let reply = send!(c, app, record(p));
            if reply.status == 429 {
                limited = Some(reply);
                break;
            }
            reply.expect(202);
        }
        let limited = limited.expect("the hourly limit answers 429");
        assert_eq!(limited.json["error"], "rate_limited");
        assert!(
            limited
                .header("retry-after")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );

        // The per-address limit, on a server that allows one request a minute.
        let strict = actix_test::init_service(
            App::new()
                .app_data(state(&engine, 1, None))
                .wrap(crate::middleware::json_errors())
                .wrap(middleware::from_fn(crate::middleware::observe))
                .configure(crate::app::routes),
        )
        .await;
        let from = |path: &'static str| Call {
            peer: Some("192.0.2.7:40000".parse().unwrap()),
            ..Call::new("get", path)
        };
        send!(c, strict, from("/healthz")).expect(200);
        let refused = send!(c, strict, from("/healthz")).expect(429);
        assert!(refused.header("retry-after").is_some());
        send!(c, strict, from("/api/v1/export/jobs").auth(t)).expect(429);

        // Every operation was seen succeeding.
        for (method, path) in API_ROUTES {
            let statuses = c
                .seen
                .get(&((*method).to_owned(), (*path).to_owned()))
                .cloned()
                .unwrap_or_default();
            assert!(
                statuses.iter().any(|s| (200..300).contains(s)),
                "{method} {path} never succeeded: {statuses:?}"
            );
        }
    }
}
