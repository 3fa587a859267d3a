//! Every error the API returns: `{"error": code, "message": sentence, "field": optional}` with the
//! right status. Engine errors become responses here and only here. Messages carry ids, never
//! names or note text; a server-side failure is logged with its request id and answered with a
//! sentence that reveals nothing of the cause.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use export_core::engine::EngineError;
use export_domain::{JobStatus, ValidationErrors};
use serde::Serialize;

/// An API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Every problem, when validation found several.
    pub errors: Vec<FieldProblem>,
}

/// One of several problems with a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// Every error the API answers.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// A code: bad_request, malformed_json, invalid_field, invalid, unauthorized, forbidden,
    /// not_found, method_not_allowed, not_ready, gone, in_use, idempotency_key_reused,
    /// payload_too_large, rate_limited, unavailable, internal.
    error: &'a str,
    /// A sentence for people; it names ids, never names or note text. A server-side failure is
    /// logged under the request id it gives.
    message: &'a str,
    /// The field, query parameter or header the problem is about, as a path such as
    /// `session_ids[2]` or `include_sections.foo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// Every problem, when a request was checked and found invalid.
    #[serde(skip_serializing_if = "<[FieldProblem]>::is_empty")]
    #[schema(value_type = Vec<FieldProblem>)]
    errors: &'a [FieldProblem],
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            errors: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn too_many(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// A failure on our side: logged in full with the request id, answered with a sentence.
    pub fn internal(request_id: &str, cause: impl std::fmt::Display) -> ApiError {
        log::error!("request {request_id} failed: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the server could not complete request {request_id}; it has been logged"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// The database (the engine's or the clinical source's) could not be reached: logged with
    /// the request id, answered 503 with `Retry-After`, as nothing about the request was wrong.
    pub fn database_unavailable(request_id: &str, cause: impl std::fmt::Display) -> ApiError {
        log::warn!("request {request_id}: the database is unavailable: {cause}");
        ApiError::unavailable("the database does not answer; try again in a few seconds")
    }

    pub fn from_validation(errors: &ValidationErrors) -> ApiError {
        let first = errors.errors.first();
        ApiError {
            field: first.map(|e| e.field.clone()),
            errors: errors
                .errors
                .iter()
                .map(|e| FieldProblem {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                match first {
                    Some(e) if errors.errors.len() == 1 => format!("{}: {}", e.field, e.message),
                    Some(e) => format!(
                        "{}: {} (and {} more problems)",
                        e.field,
                        e.message,
                        errors.errors.len() - 1
                    ),
                    None => "the request is not valid".to_owned(),
                },
            )
        }
    }

    /// The response of an engine error for request `request_id`.
    pub fn from_engine(err: EngineError, request_id: &str) -> ApiError {
        match err {
            EngineError::Unidentified(reason) => ApiError::unauthorized(reason.to_string()),
            EngineError::Invalid(problems) => ApiError::from_validation(&problems),
            EngineError::Forbidden(reason) => ApiError::forbidden(reason),
            EngineError::JobNotFound(id) => {
                ApiError::not_found(format!("export job {id} does not exist"))
            }
            EngineError::NotReady {
                id,
                status: status @ (JobStatus::Expired | JobStatus::Cancelled),
            } => ApiError::new(
                StatusCode::GONE,
                "gone",
                format!("export job {id} is {status}; its file no longer exists"),
            ),
            EngineError::NotReady { id, status } => ApiError::new(
                StatusCode::CONFLICT,
                "not_ready",
                format!("export job {id} is {status}; only completed jobs can be downloaded"),
            ),
            err @ EngineError::TooManyExports {
                retry_after_seconds,
                ..
            } => ApiError::too_many(err.to_string(), retry_after_seconds),
            err @ EngineError::IdempotencyKeyReused { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                err.to_string(),
            )
            .with_field("Idempotency-Key"),
            EngineError::Link(reason) => ApiError::forbidden(reason.to_string()),
            EngineError::TemplateNotFound(id) => {
                ApiError::not_found(format!("template {id} does not exist"))
            }
            EngineError::TemplateNameTaken => ApiError::new(
                StatusCode::CONFLICT,
                "name_taken",
                "you already have a template with this name",
            )
            .with_field("name"),
            err @ EngineError::TemplateTypeFixed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "type_fixed", err.to_string())
                    .with_field("export_type")
            }
            err @ EngineError::DatasetNotFound { .. } => {
                ApiError::not_found(err.to_string()).with_field("dataset")
            }
            EngineError::TemplateInUse(id) => ApiError::new(
                StatusCode::CONFLICT,
                "in_use",
                format!("template {id} is used by a scheduled report; delete or change that first"),
            ),
            err @ EngineError::TemplateUnusable { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
                    .with_field("template_content")
            }
            // Failures inside, named one by one: a new variant must be placed here or above.
            err @ (EngineError::Gather(_)
            | EngineError::Source(_)
            | EngineError::Store(_)
            | EngineError::Storage(_)
            | EngineError::Render(_)
            | EngineError::Dataset(_)) => {
                if err.is_unavailable() {
                    ApiError::database_unavailable(request_id, err)
                } else {
                    ApiError::internal(request_id, err)
                }
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.insert_header((RETRY_AFTER, value));
        }
        response.json(ErrorBody {
            error: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            errors: &self.errors,
        })
    }
}

/// Parses a JSON body into `T`, naming the field of the first problem: malformed JSON, an unknown
/// field, a wrong type.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = (path != ".").then_some(path);
        let message = describe_json_error(&inner);
        match inner.classify() {
            serde_json::error::Category::Data => {
                let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
                match field.or_else(|| unknown_field_name(&inner.to_string())) {
                    Some(field) => error.with_field(field),
                    None => error,
                }
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", message),
        }
    })?;
    deserializer.end().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body holds something after its JSON value",
        )
    })?;
    Ok(value)
}

/// A sentence for a JSON error, without serde's line and column noise where it adds nothing.
fn describe_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("the body is not valid JSON ({text})")
        }
        _ => match text.rfind(" at line ") {
            Some(cut) => text[..cut].to_owned(),
            None => text,
        },
    }
}

/// The field serde names in "unknown field `x`, expected ..." or "duplicate field `x`".
pub(crate) fn unknown_field_name(text: &str) -> Option<String> {
    let rest = text
        .strip_prefix("unknown field `")
        .or_else(|| text.strip_prefix("duplicate field `"))?;
    Some(rest[..rest.find('`')?].to_owned())
}

impl ApiError {
    /// A scheduler error as a response.
    pub fn from_schedule(
        err: export_schedule::scheduler::ScheduleError,
        request_id: &str,
    ) -> ApiError {
        use export_schedule::scheduler::ScheduleError;

        match err {
            ScheduleError::Invalid(problems) => ApiError::from_validation(&problems),
            ScheduleError::NotFound(id) => {
                ApiError::not_found(format!("scheduled report {id} does not exist"))
            }
            ScheduleError::Forbidden(reason) => ApiError::forbidden(reason),
            ScheduleError::AlreadyActive { field } => ApiError::new(
                StatusCode::CONFLICT,
                "schedule_taken",
                "you already have an active schedule of this template for this patient",
            )
            .with_field(field),
            ScheduleError::Engine(err) => ApiError::from_engine(err, request_id),
            ScheduleError::Store(err) if err.is_unavailable() => {
                ApiError::database_unavailable(request_id, err)
            }
            err @ ScheduleError::Store(_) => ApiError::internal(request_id, err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        #[serde(default)]
        options: std::collections::BTreeMap<String, bool>,
    }

    #[test]
    fn unreachable_clinical_source_is_503_not_500() {
        use export_core::source::SourceError;
        let check = |err: EngineError, expect: (u16, &str, Option<u64>)| {
            let text = err.to_string();
            let answer = ApiError::from_engine(err, "r1");
            assert_eq!(
                (answer.status.as_u16(), answer.code, answer.retry_after),
                expect,
                "{text}"
            );
        };
        let cases = [
            (
                SourceError::Unavailable("no connection available".into()),
                (503, "unavailable", Some(5)),
            ),
            (
                SourceError::Failed("a row could not be read".into()),
                (500, "internal", None),
            ),
        ];
        for (err, expect) in cases {
            check(EngineError::Source(err), expect);
        }
    }

    #[test]
    fn json_problems_name_their_field() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("{", "malformed_json", None),
            ("", "bad_request", None),
            ("[1]", "bad_request", None),
            ("\"name\"", "bad_request", None),
            (r#"{"name": 3}"#, "invalid_field", Some("name")),
            (
                r#"{"name": "a", "colour": 1}"#,
                "invalid_field",
                Some("colour"),
            ),
            (
                r#"{"name": "a", "options": {"x": "yes"}}"#,
                "invalid_field",
                Some("options.x"),
            ),
            (r#"{"name": "a"} {}"#, "malformed_json", None),
            (
                r#"{"name": "a", "name": "b"}"#,
                "invalid_field",
                Some("name"),
            ),
        ];
        for (body, code, field) in cases {
            let err = parse_json::<Input>(body.as_bytes()).unwrap_err();
            assert_eq!(
                (err.code, err.field.as_deref()),
                (*code, *field),
                "{body}: {err}"
            );
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }
}
