//! The route table: every route the API serves, registered once, with JSON errors for bad paths
//! and queries, unknown routes and wrong methods.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::ApiError;
use crate::{routes, scheduled, templates};

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
